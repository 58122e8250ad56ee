//! Multipart uploads without an upload store.
//!
//! Create wraps a fresh per-upload data key for the upload's identity and starts a backend upload on a
//! hidden key; the client's UploadId carries the backend upload id and the wrapped key
//! ([`crate::core::upload_token`]), so any replica seals any part. Each part is its own AES-GCM-SIV segment
//! stream bound to its part number. Complete checks the named parts against the backend's listing (S3's
//! rules, on plaintext sizes), completes the hidden upload, and writes the final object under the
//! client's key with its layout and envelope in one server-side copy, then removes the hidden object.
//! Until that copy lands nothing is visible under the client's key; a crash before it leaves only a
//! hidden object (see docs/FORMAT.md §13).

use std::collections::BTreeMap;

use futures::StreamExt as _;
use time::OffsetDateTime;

use crate::backend::{
    BackendError, ByteStream, CompletedPart, ContentHeaders, ListPartsOptions, ListUploadsOptions, PartInfo,
    PutOptions, MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_SIZE,
};
use crate::core::completion_intent as intent;
use crate::core::envelope::{
    ciphertext_len, plaintext_len, seal_with, Algorithm, Envelope, Layout, ObjectIdentity, PartKeys, SealKeys,
    LAYOUT_META, MAX_ENCODED_LAYOUT,
};
use crate::core::error::{CoreError, CoreResult};
use crate::core::keys::{DataKey, KeyError};
use crate::core::service::{decode_envelope, key_error, scope_error, BlobService, PutOutcome, PutRequest};
/// Hidden-upload metadata carrying the client's retention request from Create to Complete.
const CLIENT_RETENTION_DAYS: &str = "blobseal-client-retention-days";

use crate::core::stored::{backend_put_options, client_etag, digest_of, stored_metadata, STORED_CONTENT_TYPE};
use crate::core::tenant::{Placement, Tenant};
use crate::core::upload_token::{
    parse_backend_key, upload_wrap_aad, UploadMaterial, UploadToken, MAX_BACKEND_KEY, UPLOAD_KEY_PREFIX,
};

/// A part as ListParts shows it: plaintext size, the ETag UploadPart returned.
#[derive(Debug, Clone)]
pub struct ListedPart {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified: OffsetDateTime,
}

/// A page of ListParts.
#[derive(Debug, Clone, Default)]
pub struct PartListing {
    pub parts: Vec<ListedPart>,
    pub is_truncated: bool,
    pub next_part_number_marker: Option<u32>,
}

/// An upload in progress as ListMultipartUploads shows it.
#[derive(Debug, Clone)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: OffsetDateTime,
}

/// A page of ListMultipartUploads.
#[derive(Debug, Clone, Default)]
pub struct UploadListing {
    pub uploads: Vec<ListedUpload>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

/// What [`BlobService::prepare_completion`] found.
pub enum Completion {
    /// Ready to finish.
    Pending(Box<PreparedCompletion>),
    /// This upload was completed before (a retried completion): its object's outcome.
    AlreadyDone(PutOutcome),
}

/// A completion that passed every check and has not changed anything yet.
pub struct PreparedCompletion {
    up: Upload,
    dek: DataKey,
    keys: PartKeys,
    layout: Layout,
    completed: Vec<CompletedPart>,
    encoded_layout: String,
    if_none_match_any: bool,
    /// The hidden upload was completed by an earlier attempt that crashed: resume from its object.
    resume: bool,
}

impl PreparedCompletion {
    /// Stored bytes the final copy will move.
    pub fn stored_len(&self) -> u64 {
        self.layout.stored_len()
    }
}

/// An upload resolved from its UploadId: where its parts live and (if unwrapped) its keys.
struct Upload {
    placement: Placement,
    token: UploadToken,
    backend_key: String,
}

fn no_such_upload<E>(_: E) -> CoreError {
    CoreError::NoSuchUpload
}

/// Maps "the backend has no such upload" to the client's NoSuchUpload; other errors pass.
fn upload_error(e: BackendError) -> CoreError {
    match e {
        BackendError::NoSuchUpload | BackendError::NoSuchKey => CoreError::NoSuchUpload,
        other => other.into(),
    }
}

impl BlobService {
    fn resolve_upload(&self, tenant: &Tenant, bucket: &str, key: &str, upload_id: &str) -> CoreResult<Upload> {
        let placement = self.place(tenant, bucket)?;
        let token = UploadToken::decode(upload_id).map_err(no_such_upload)?;
        let backend_key = token.material.backend_key(key).map_err(no_such_upload)?;
        Ok(Upload { placement, token, backend_key })
    }

    /// Unwraps the upload's data key. A token made for another tenant, bucket or key does not unwrap:
    /// to the client that is an unknown upload.
    async fn upload_keys(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        up: &Upload,
    ) -> CoreResult<(DataKey, PartKeys)> {
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let aad = upload_wrap_aad(&id, &up.token.material.salt);
        let dek = match self.keys().unwrap(&tenant.name, &up.token.material.wrapped, &aad).await {
            Ok(dek) => dek,
            // Another tenant's (or a shredded key's) upload id: to this caller, no such upload.
            Err(KeyError::Unwrap | KeyError::Destroyed(_)) => return Err(CoreError::NoSuchUpload),
            Err(e) => return Err(key_error(e)),
        };
        let keys = PartKeys::derive(&dek, &up.token.material.salt)?;
        Ok((dek, keys))
    }

    /// CreateMultipartUpload: returns the UploadId.
    pub async fn create_upload(&self, tenant: &Tenant, bucket: &str, key: &str, req: PutRequest) -> CoreResult<String> {
        Self::check_client_key(key)?;
        Self::check_client_metadata(&req.metadata)?;
        crate::core::governance::check_client_tags(&req.tags)?;
        let p = self.place(tenant, bucket)?;
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let dek = DataKey::generate().map_err(key_error)?;
        let mut salt = [0u8; 32];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| CoreError::Key(KeyError::Random))?;
        let (req_tags, retention_days) = (req.tags, req.retention_days);
        let stored = stored_metadata(req.metadata, &req.headers);
        let scope = self.keys().scope_of(&tenant.name, key, &stored).map_err(scope_error)?;
        let wrapped = self
            .keys()
            .wrap(&tenant.name, &scope, None, &dek, &upload_wrap_aad(&id, &salt))
            .await
            .map_err(key_error)?;
        let material = UploadMaterial { salt, wrapped };
        let backend_key = material.backend_key(key).map_err(|_| CoreError::Unreachable("upload material encodes"))?;
        if backend_key.len() > MAX_BACKEND_KEY {
            return Err(CoreError::InvalidRequest(format!(
                "key too long for a multipart upload through blobseal (at most {} bytes)",
                MAX_BACKEND_KEY - (backend_key.len() - key.len())
            )));
        }
        // The metadata and tags ride on the hidden upload until Complete copies them into the final
        // object; the retention is decided there (a refusal is answered now, though).
        let mut stored = stored;
        let mut tags = req_tags;
        self.stamp_retention(tenant, bucket, key, &mut stored.clone(), &mut tags.clone(), retention_days)?;
        if let Some(days) = retention_days {
            stored.insert(CLIENT_RETENTION_DAYS.to_owned(), days.to_string());
        }
        tags.remove(crate::core::governance::DELETE_AFTER);
        let opts = PutOptions {
            metadata: stored,
            headers: ContentHeaders { content_type: Some(STORED_CONTENT_TYPE.to_owned()), ..ContentHeaders::default() },
            tags,
            ..PutOptions::default()
        };
        let backend_upload_id = p.backend.create_upload(&p.bucket, &backend_key, opts).await?;
        UploadToken { backend_upload_id, material }.encode().map_err(|_| CoreError::Unreachable("upload id encodes"))
    }

    /// UploadPart: seals `len` plaintext bytes as part `part_number`; returns the part's ETag.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> CoreResult<String> {
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(CoreError::InvalidRequest(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ));
        }
        if len > MAX_PART_SIZE {
            return Err(CoreError::InvalidRequest("Your proposed upload exceeds the maximum allowed size".into()));
        }
        let up = self.resolve_upload(tenant, bucket, key, upload_id)?;
        let (_, keys) = self.upload_keys(tenant, bucket, key, &up).await?;
        let sealed = seal_with(SealKeys::Part { keys, part_number }, len, body);
        let p = &up.placement;
        let (bucket, id) = (&p.bucket, &up.token.backend_upload_id);
        let stored = p.backend.upload_part(bucket, &up.backend_key, id, part_number, sealed, ciphertext_len(len)).await;
        match stored {
            Ok(etag) => Ok(etag),
            // Some servers (moto) answer a part for a finished or unknown upload with a bare 500; ask
            // the backend whether the upload still exists before calling it an outage.
            Err(BackendError::Unavailable(detail)) => {
                let probe = ListPartsOptions { part_number_marker: None, max_parts: 1 };
                match p.backend.list_parts(bucket, &up.backend_key, id, probe).await {
                    Err(BackendError::NoSuchUpload) => Err(CoreError::NoSuchUpload),
                    _ => Err(BackendError::Unavailable(detail).into()),
                }
            }
            Err(e) => Err(upload_error(e)),
        }
    }

    /// AbortMultipartUpload.
    pub async fn abort_upload(&self, tenant: &Tenant, bucket: &str, key: &str, upload_id: &str) -> CoreResult<()> {
        let up = self.resolve_upload(tenant, bucket, key, upload_id)?;
        let p = &up.placement;
        p.backend.abort_upload(&p.bucket, &up.backend_key, &up.token.backend_upload_id).await.map_err(upload_error)
    }

    /// ListParts, with plaintext part sizes.
    #[allow(clippy::too_many_arguments)]
    pub async fn list_parts(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number_marker: Option<u32>,
        max_parts: usize,
    ) -> CoreResult<PartListing> {
        let up = self.resolve_upload(tenant, bucket, key, upload_id)?;
        let p = &up.placement;
        let page = p
            .backend
            .list_parts(
                &p.bucket,
                &up.backend_key,
                &up.token.backend_upload_id,
                ListPartsOptions { part_number_marker, max_parts },
            )
            .await
            .map_err(upload_error)?;
        let parts = page.parts.into_iter().map(listed_part).collect::<CoreResult<_>>()?;
        Ok(PartListing {
            parts,
            is_truncated: page.is_truncated,
            next_part_number_marker: page.next_part_number_marker,
        })
    }

    /// ListMultipartUploads: the backend's uploads on hidden keys, mapped back to client keys and
    /// UploadIds.
    pub async fn list_uploads(
        &self,
        tenant: &Tenant,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> CoreResult<UploadListing> {
        let p = self.place(tenant, bucket)?;
        // Backend keys are `<prefix><key>/<material>`: uploads of the marker key sort after
        // `<prefix><key>/`, so "after this key" is "after `<prefix><key>/` plus the highest character".
        let backend_marker = match (key_marker, upload_id_marker) {
            (Some(k), Some(u)) => UploadToken::decode(u)
                .ok()
                .and_then(|t| t.material.backend_key(k).ok())
                .or_else(|| Some(format!("{UPLOAD_KEY_PREFIX}{k}/\u{10FFFF}"))),
            (Some(k), None) => Some(format!("{UPLOAD_KEY_PREFIX}{k}/\u{10FFFF}")),
            (None, _) => None,
        };
        let upload_id_marker = match (key_marker, upload_id_marker) {
            (Some(_), Some(u)) => UploadToken::decode(u).ok().map(|t| t.backend_upload_id),
            _ => None,
        };
        let page = p
            .backend
            .list_uploads(
                &p.bucket,
                ListUploadsOptions {
                    prefix: format!("{UPLOAD_KEY_PREFIX}{prefix}"),
                    key_marker: backend_marker,
                    upload_id_marker,
                    max_uploads,
                },
            )
            .await?;
        let mut uploads = Vec::new();
        for u in page.uploads {
            // Uploads on keys blobseal did not make are not this tenant's business.
            let Ok((key, material)) = parse_backend_key(&u.key) else { continue };
            let token = UploadToken { backend_upload_id: u.upload_id, material };
            let Ok(upload_id) = token.encode() else { continue };
            uploads.push(ListedUpload { key, upload_id, initiated: u.initiated });
        }
        let (next_key_marker, next_upload_id_marker) = match uploads.last() {
            Some(last) if page.is_truncated => (Some(last.key.clone()), Some(last.upload_id.clone())),
            _ => (None, None),
        };
        Ok(UploadListing { uploads, is_truncated: page.is_truncated, next_key_marker, next_upload_id_marker })
    }

    /// CompleteMultipartUpload from the named `(part number, ETag)` list: [`Self::prepare_completion`]
    /// then [`Self::finish_completion`].
    #[allow(clippy::too_many_arguments)]
    pub async fn complete_upload(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        upload_id: &str,
        named: &[(u32, String)],
        if_none_match_any: bool,
    ) -> CoreResult<PutOutcome> {
        match self.prepare_completion(tenant, bucket, key, upload_id, named, if_none_match_any).await? {
            Completion::Pending(prepared) => self.finish_completion(tenant, bucket, key, *prepared).await,
            Completion::AlreadyDone(out) => Ok(out),
        }
    }

    /// The quick half of a completion: everything that can refuse it (unknown upload, S3's part rules,
    /// `If-None-Match: *`, layout size) without changing anything. The upload stays usable on error.
    #[allow(clippy::too_many_arguments)]
    pub async fn prepare_completion(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        upload_id: &str,
        named: &[(u32, String)],
        if_none_match_any: bool,
    ) -> CoreResult<Completion> {
        let up = self.resolve_upload(tenant, bucket, key, upload_id)?;
        let (dek, keys) = self.upload_keys(tenant, bucket, key, &up).await?;
        let p = &up.placement;
        let stored_parts = match self.all_parts(&up).await {
            Ok(parts) => parts,
            Err(CoreError::NoSuchUpload) => {
                // S3 answers a repeated completion of a finished upload with success (a client whose
                // response was lost retries). The object made from *this* upload carries its salt.
                if let Some(out) = self.completed_by(&up, key).await {
                    // A crash after the final copy may have left the hidden object and intent.
                    forget_completion(p, &up.backend_key, None).await;
                    return Ok(Completion::AlreadyDone(out));
                }
                // A crash after the hidden upload was completed: resume from its intent.
                return match self.resumable(&up, named).await? {
                    Some((layout, encoded_layout, completed)) => {
                        Ok(Completion::Pending(Box::new(PreparedCompletion {
                            up,
                            dek,
                            keys,
                            layout,
                            completed,
                            encoded_layout,
                            if_none_match_any,
                            resume: true,
                        })))
                    }
                    None => Err(CoreError::NoSuchUpload),
                };
            }
            Err(e) => return Err(e),
        };
        let (layout, completed) = check_named_parts(named, &stored_parts)?;
        if if_none_match_any {
            match p.backend.head(&p.bucket, key, None).await {
                Ok(_) => return Err(BackendError::PreconditionFailed.into()),
                Err(BackendError::NoSuchKey) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let encoded_layout = layout.encode();
        if encoded_layout.len() > MAX_ENCODED_LAYOUT {
            return Err(CoreError::InvalidRequest(format!(
                "this upload's parts (sizes and gaps) need a {}-byte layout; blobseal stores at most {MAX_ENCODED_LAYOUT}",
                encoded_layout.len()
            )));
        }
        Ok(Completion::Pending(Box::new(PreparedCompletion {
            up,
            dek,
            keys,
            layout,
            completed,
            encoded_layout,
            if_none_match_any,
            resume: false,
        })))
    }

    /// The layout and completion list of an earlier attempt of this same completion whose hidden
    /// object is in place (see `core::completion_intent`); `None` if there is nothing to resume.
    async fn resumable(
        &self,
        up: &Upload,
        named: &[(u32, String)],
    ) -> CoreResult<Option<(Layout, String, Vec<CompletedPart>)>> {
        let p = &up.placement;
        let Some(intent_key) = intent::intent_key(&up.backend_key) else {
            return Ok(None);
        };
        let Some(found) = intent::read(p.backend.as_ref(), &p.bucket, &intent_key).await? else {
            return Ok(None);
        };
        if found.backend_upload_id != up.token.backend_upload_id || !found.matches(named) {
            return Ok(None);
        }
        let layout = Layout::decode(&found.layout)?;
        match p.backend.head(&p.bucket, &up.backend_key, None).await {
            Ok(head) if head.meta.size == layout.body_len() => {}
            Ok(_) | Err(BackendError::NoSuchKey) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        Ok(Some((layout, found.layout.clone(), found.completed())))
    }

    /// The current object at `key`, if this upload made it.
    async fn completed_by(&self, up: &Upload, key: &str) -> Option<PutOutcome> {
        let p = &up.placement;
        let head = p.backend.head(&p.bucket, key, None).await.ok()?;
        let (envelope, layout) = decode_envelope(&head).ok()?;
        (layout.is_some() && envelope.salt == up.token.material.salt).then(|| PutOutcome {
            etag: client_etag(&head.meta.etag),
            version_id: head.meta.version_id.clone(),
            last_modified: Some(head.meta.last_modified),
            delete_after: head.metadata.get(crate::core::governance::DELETE_AFTER).cloned(),
            envelope_tag: head
                .metadata
                .get(crate::core::stored::ENVELOPE_META)
                .map(|e| crate::core::service::envelope_tag(e)),
        })
    }

    /// The slow half: completes the hidden upload and writes the final object (a server-side copy
    /// whose time grows with the object's size).
    pub async fn finish_completion(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        prepared: PreparedCompletion,
    ) -> CoreResult<PutOutcome> {
        let PreparedCompletion { up, dek, keys, layout, completed, encoded_layout, if_none_match_any, resume } =
            prepared;
        let p = &up.placement;
        let hidden_version = if resume {
            // The hidden key is unique to this upload: its only (latest) version is the one completed.
            None
        } else {
            // The intent first: once the hidden upload is completed its parts (and their sizes) are
            // gone, and only the intent lets a retry after a crash finish the object.
            let intent_key = intent::intent_key(&up.backend_key).ok_or(CoreError::Unreachable("hidden key"))?;
            let record = intent::Intent::new(&up.token.backend_upload_id, &completed, &encoded_layout);
            intent::write(p.backend.as_ref(), &p.bucket, &intent_key, &record).await?;
            crate::failpoint::hit("core.complete.after-intent");
            let hidden = p
                .backend
                .complete_upload(&p.bucket, &up.backend_key, &up.token.backend_upload_id, &completed, false)
                .await
                .map_err(upload_error)?;
            crate::failpoint::hit("core.complete.after-hidden");
            hidden.version_id
        };
        let hidden = crate::backend::PutResult { etag: String::new(), version_id: hidden_version, last_modified: None };
        let result = self
            .write_final(
                tenant,
                bucket,
                key,
                &up,
                &hidden.version_id,
                &layout,
                encoded_layout,
                &dek,
                &keys,
                if_none_match_any,
            )
            .await;
        match &result {
            Ok(_) => {
                crate::failpoint::hit("core.complete.after-copy");
                forget_completion(p, &up.backend_key, hidden.version_id.as_deref()).await;
            }
            // A refused conditional write is final (as S3 ends the upload); anything else may be
            // transient, so the hidden object and intent stay for a retry (housekeeping collects them
            // if none comes).
            Err(CoreError::Backend(BackendError::PreconditionFailed)) => {
                forget_completion(p, &up.backend_key, hidden.version_id.as_deref()).await
            }
            Err(_) => {}
        }
        result
    }

    /// Every part of an upload in progress, following ListParts pages.
    async fn all_parts(&self, up: &Upload) -> CoreResult<Vec<PartInfo>> {
        let p = &up.placement;
        let mut out = Vec::new();
        let mut marker = None;
        // At most 10000 parts, 1000 a page: the bound keeps a misbehaving backend from looping us.
        for _ in 0..=MAX_PART_NUMBER / 1000 {
            let page = p
                .backend
                .list_parts(
                    &p.bucket,
                    &up.backend_key,
                    &up.token.backend_upload_id,
                    ListPartsOptions { part_number_marker: marker, max_parts: 1000 },
                )
                .await
                .map_err(upload_error)?;
            out.extend(page.parts);
            if !page.is_truncated {
                return Ok(out);
            }
            marker = page.next_part_number_marker.or(out.last().map(|p| p.part_number));
        }
        Err(BackendError::Unavailable("ListParts did not end".into()).into())
    }

    /// Writes the final object: the hidden object's bytes (plus layout padding) under the client's
    /// key, with its metadata, layout and a re-wrapped envelope.
    #[allow(clippy::too_many_arguments)]
    async fn write_final(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        up: &Upload,
        hidden_version: &Option<String>,
        layout: &Layout,
        encoded_layout: String,
        dek: &DataKey,
        keys: &PartKeys,
        if_none_match_any: bool,
    ) -> CoreResult<PutOutcome> {
        let p = &up.placement;
        let head = p.backend.head(&p.bucket, &up.backend_key, hidden_version.as_deref()).await?;
        if head.meta.size != layout.body_len() {
            return Err(CoreError::integrity("multipart_layout", "completed upload has an unexpected size"));
        }
        let mut stored = head.metadata.clone();
        stored.insert(LAYOUT_META.to_owned(), encoded_layout);
        // The deadline counts from the completion: that is when the object is written.
        let client_days = stored.remove(CLIENT_RETENTION_DAYS).and_then(|d| d.parse().ok());
        let mut tags = match p.backend.get_tags(&p.bucket, &up.backend_key, hidden_version.as_deref()).await {
            Ok(t) => t,
            Err(crate::backend::BackendError::NotSupported(_)) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let stamp = self.stamp_retention(tenant, bucket, key, &mut stored, &mut tags, client_days)?;
        let envelope = Envelope {
            alg: Algorithm::PartsSiv,
            plaintext_len: layout.plain_len(),
            salt: up.token.material.salt,
            commitment: keys.commitment(),
            meta_digest: digest_of(&stored),
            kek_id: String::new(),
            wrapped_dek: Vec::new(),
        };
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let encoded = self.seal_envelope(tenant, &id, envelope, dek, &stored).await?;
        let tag = crate::core::service::envelope_tag(&encoded);
        let opts = backend_put_options(stored, encoded, if_none_match_any, tags);
        let res = copy_with_padding(p, &up.backend_key, hidden_version.as_deref(), key, layout, opts).await?;
        let final_place = self.place(tenant, bucket)?;
        self.copy_to_backups(tenant, bucket, key, &final_place, res.version_id.as_deref()).await;
        Ok(PutOutcome {
            etag: client_etag(&res.etag),
            version_id: res.version_id,
            last_modified: res.last_modified,
            delete_after: stamp.text(),
            envelope_tag: Some(tag),
        })
    }
}

fn listed_part(p: PartInfo) -> CoreResult<ListedPart> {
    let size = plaintext_len(p.size)
        .ok_or_else(|| CoreError::integrity("multipart_layout", "stored part has an impossible size"))?;
    Ok(ListedPart {
        part_number: p.part_number,
        size,
        etag: p.etag.trim_matches('"').to_owned(),
        last_modified: p.last_modified,
    })
}

/// Checks a completion against the stored parts (S3's rules, on plaintext sizes) and returns the
/// layout and the backend's completion list.
fn check_named_parts(named: &[(u32, String)], stored: &[PartInfo]) -> CoreResult<(Layout, Vec<CompletedPart>)> {
    if named.is_empty() {
        return Err(CoreError::InvalidRequest(
            "The XML you provided was not well-formed or did not validate against our published schema".into(),
        ));
    }
    // S3 reports an unsorted list before looking at any part.
    if named.windows(2).any(|w| matches!(w, [(a, _), (b, _)] if b <= a)) {
        return Err(BackendError::InvalidPartOrder.into());
    }
    let mut sizes = Vec::with_capacity(named.len());
    let mut completed = Vec::with_capacity(named.len());
    for (i, (number, etag)) in named.iter().enumerate() {
        let etag = etag.trim().trim_matches('"');
        let part = stored
            .iter()
            .find(|p| p.part_number == *number)
            // A backend that lists no part ETags (s3s-fs) cannot be checked here; it completes by number.
            .filter(|p| p.etag.is_empty() || p.etag.trim_matches('"') == etag)
            .ok_or_else(|| BackendError::InvalidPart(format!("part {number}")))?;
        let size = listed_part(part.clone())?.size;
        if i + 1 < named.len() && size < MIN_PART_SIZE {
            return Err(BackendError::EntityTooSmall.into());
        }
        sizes.push((*number, size));
        completed.push(CompletedPart { part_number: *number, etag: etag.to_owned() });
    }
    Ok((Layout::from_parts(&sizes)?, completed))
}

/// Copies the hidden object (`layout.body_len()` bytes) to `key` with `opts`, appending the layout's
/// zero padding: one server-side copy when it fits, a server-side multipart copy otherwise, and a
/// streamed rewrite only for a padded object under the minimum part size.
async fn copy_with_padding(
    p: &Placement,
    hidden: &str,
    hidden_version: Option<&str>,
    key: &str,
    layout: &Layout,
    opts: PutOptions,
) -> CoreResult<crate::backend::PutResult> {
    let (body, pad) = (layout.body_len(), layout.pad_len());
    let b = &p.backend;
    if pad == 0 && body <= MAX_PART_SIZE {
        return Ok(b.copy(&p.bucket, hidden, hidden_version, &p.bucket, key, opts).await?);
    }
    if body < MIN_PART_SIZE {
        let got = b
            .get(
                &p.bucket,
                hidden,
                crate::backend::GetOptions { range: None, version_id: hidden_version.map(str::to_owned) },
            )
            .await?;
        let padded = got.body.chain(zeros(pad)).boxed();
        return Ok(b.put(&p.bucket, key, padded, body + pad, opts).await?);
    }
    let if_none_match_any = opts.if_none_match_any;
    let upload = b.create_upload(&p.bucket, key, opts).await?;
    // A crash from here leaves a backend upload on the client's key that no client knows of:
    // housekeeping aborts it by age (`core::housekeeping`).
    crate::failpoint::hit("core.complete.final-upload-started");
    let result = async {
        let chunks = body.div_ceil(MAX_PART_SIZE);
        let chunk = body.div_ceil(chunks);
        let mut parts = Vec::new();
        for (i, start) in (0..chunks).map(|i| i * chunk).enumerate() {
            let number = u32::try_from(i + 1).map_err(|_| CoreError::Unreachable("part count"))?;
            let range = start..(start + chunk).min(body);
            let etag = b.upload_part_copy(&p.bucket, key, &upload, number, &p.bucket, hidden, Some(range)).await?;
            parts.push(CompletedPart { part_number: number, etag });
        }
        if pad > 0 {
            let number = u32::try_from(parts.len() + 1).map_err(|_| CoreError::Unreachable("part count"))?;
            let etag = b.upload_part(&p.bucket, key, &upload, number, zeros(pad), pad).await?;
            parts.push(CompletedPart { part_number: number, etag });
        }
        Ok::<_, CoreError>(b.complete_upload(&p.bucket, key, &upload, &parts, if_none_match_any).await?)
    }
    .await;
    if result.is_err() {
        if let Err(e) = b.abort_upload(&p.bucket, key, &upload).await {
            tracing::warn!(error = %e, "could not abort a failed final copy upload");
        }
    }
    result
}

/// Deletes a finished completion's hidden object, then its intent (in that order: an intent without
/// its hidden object resumes nothing, while the reverse would hide the object from a retry). Failures
/// only leave garbage for housekeeping, so they are logged, not returned.
async fn forget_completion(p: &Placement, hidden: &str, hidden_version: Option<&str>) {
    let deleted = match hidden_version {
        Some(v) => p.backend.delete(&p.bucket, hidden, Some(v)).await.map(|_| ()),
        None => intent::delete_current(p.backend.as_ref(), &p.bucket, hidden).await,
    };
    if let Err(e) = deleted {
        tracing::warn!(error = %e, "could not delete a completed upload's hidden object; housekeeping will");
        return;
    }
    crate::failpoint::hit("core.complete.after-hidden-delete");
    if let Some(intent_key) = intent::intent_key(hidden) {
        if let Err(e) = intent::delete_current(p.backend.as_ref(), &p.bucket, &intent_key).await {
            tracing::warn!(error = %e, "could not delete a completion intent; housekeeping will");
        }
    }
}

/// `len` zero bytes (layout padding; at most one segment).
fn zeros(len: u64) -> ByteStream {
    let bytes = bytes::Bytes::from(vec![0u8; usize::try_from(len).unwrap_or(0)]);
    futures::stream::once(async move { Ok(bytes) }).boxed()
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "multipart_crash_tests.rs"]
mod crash_tests;
