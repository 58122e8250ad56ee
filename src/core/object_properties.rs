//! Changing what is stored around an object's bytes: its tags, its user metadata and its entity headers
//! (Azure's Set Blob Tags / Metadata / Properties). The bytes and data key stay; a metadata change re-seals
//! the envelope (the metadata digest is authenticated) in one server-side copy of the object onto itself.

use std::collections::BTreeMap;

use crate::backend::{BackendError, ContentHeaders};
use crate::core::envelope::ObjectIdentity;
use crate::core::error::CoreResult;
use crate::core::governance::{check_client_tags, RESERVED_TAG_PREFIX};
use crate::core::service::{BlobService, PutOutcome, CONTENT_MD5_META};
use crate::core::stored::{
    backend_put_options, client_etag, digest_of, stored_headers, stored_metadata, user_metadata, HEADER_META_PREFIX,
    RESERVED_META_PREFIX,
};
use crate::core::tenant::Tenant;

/// A change of an object's metadata: `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct PropertiesChange {
    pub metadata: Option<BTreeMap<String, String>>,
    pub headers: Option<ContentHeaders>,
    /// `Some(None)` removes the stored MD5.
    pub content_md5: Option<Option<String>>,
}

/// What the backend says of an object, without opening its envelope (which needs its key).
#[derive(Debug, Clone)]
pub struct ObjectPeek {
    /// Client-visible ETag (see `ObjectInfo::etag`).
    pub etag: String,
    pub last_modified: time::OffsetDateTime,
    pub envelope_tag: Option<String>,
}

impl BlobService {
    /// An object's ETag and time, unauthenticated: for deciding whether it exists and whether a delete's
    /// conditions hold, even when its key was shredded or its envelope is broken (it can still be deleted).
    pub async fn peek_object(&self, tenant: &Tenant, bucket: &str, key: &str) -> CoreResult<ObjectPeek> {
        Self::check_client_key(key)?;
        let p = self.place(tenant, bucket)?;
        let head = p.backend.head(&p.bucket, key, None).await?;
        Ok(ObjectPeek {
            etag: client_etag(&head.meta.etag),
            last_modified: head.meta.last_modified,
            envelope_tag: head
                .metadata
                .get(crate::core::stored::ENVELOPE_META)
                .map(|e| crate::core::service::envelope_tag(e)),
        })
    }

    /// The object's client tags (blobseal's own `blobseal-*` tags left out).
    pub async fn object_tags(&self, tenant: &Tenant, bucket: &str, key: &str) -> CoreResult<BTreeMap<String, String>> {
        Self::check_client_key(key)?;
        let p = self.place(tenant, bucket)?;
        let tags = match p.backend.get_tags(&p.bucket, key, None).await {
            Ok(t) => t,
            Err(BackendError::NotSupported(_)) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(tags.into_iter().filter(|(k, _)| !k.to_ascii_lowercase().starts_with(RESERVED_TAG_PREFIX)).collect())
    }

    /// Replaces the object's client tags; blobseal's own tags (the retention deadline) stay as they are,
    /// so a tag change never shortens a deadline (that is decided on write, by the rule).
    pub async fn set_object_tags(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        tags: BTreeMap<String, String>,
    ) -> CoreResult<()> {
        Self::check_client_key(key)?;
        check_client_tags(&tags)?;
        let p = self.place(tenant, bucket)?;
        let current = p.backend.get_tags(&p.bucket, key, None).await?;
        let mut next = tags;
        next.extend(current.into_iter().filter(|(k, _)| k.to_ascii_lowercase().starts_with(RESERVED_TAG_PREFIX)));
        Ok(p.backend.put_tags(&p.bucket, key, None, &next).await?)
    }

    /// Changes the object's user metadata and/or entity headers, keeping its bytes, data key, tags and
    /// blobseal's own entries (deadline, layout, block table).
    pub async fn update_properties(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        change: PropertiesChange,
    ) -> CoreResult<PutOutcome> {
        Self::check_client_key(key)?;
        if let Some(m) = &change.metadata {
            Self::check_client_metadata(m)?;
        }
        let p = self.place(tenant, bucket)?;
        let head = p.backend.head(&p.bucket, key, None).await?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let opened = self.open_envelope(tenant, &id, &head).await?;
        let metadata = change.metadata.unwrap_or_else(|| user_metadata(&head.metadata));
        let headers = change.headers.unwrap_or_else(|| stored_headers(&head.metadata));
        let mut stored = stored_metadata(metadata, &headers);
        // blobseal's own entries (other than the envelope and the entity headers) stay.
        for (k, v) in &head.metadata {
            let own = k.starts_with(RESERVED_META_PREFIX) && !k.starts_with(HEADER_META_PREFIX);
            if own && k != crate::core::stored::ENVELOPE_META {
                stored.insert(k.clone(), v.clone());
            }
        }
        match change.content_md5 {
            Some(Some(md5)) => {
                stored.insert(CONTENT_MD5_META.to_owned(), md5);
            }
            Some(None) => {
                stored.remove(CONTENT_MD5_META);
            }
            None => {}
        }
        let tags = match p.backend.get_tags(&p.bucket, key, None).await {
            Ok(t) => t,
            Err(BackendError::NotSupported(_)) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let envelope = crate::core::envelope::Envelope {
            meta_digest: digest_of(&stored),
            kek_id: String::new(),
            wrapped_dek: Vec::new(),
            ..opened.envelope
        };
        let encoded = self.seal_envelope(tenant, &id, envelope, &opened.dek, &stored).await?;
        let tag = crate::core::service::envelope_tag(&encoded);
        let mut opts = backend_put_options(stored, encoded, false, tags);
        // Only if nobody replaced the object meanwhile: otherwise the new envelope would not match its bytes.
        opts.source_if_match = Some(head.meta.etag.clone());
        let res = p.backend.copy(&p.bucket, key, None, &p.bucket, key, opts).await?;
        self.copy_to_backups(tenant, bucket, key, &p, res.version_id.as_deref()).await;
        Ok(PutOutcome {
            etag: client_etag(&res.etag),
            version_id: res.version_id,
            last_modified: res.last_modified,
            delete_after: head.metadata.get(crate::core::governance::DELETE_AFTER).cloned(),
            envelope_tag: Some(tag),
        })
    }
}
