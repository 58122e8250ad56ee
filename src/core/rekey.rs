//! Re-keying stored objects without touching their bytes: which lifetime key an object uses, and
//! re-wrapping its data key under the tenant's current key by rewriting only its envelope.
//!
//! The rewrite is a server-side copy of the object onto itself with new metadata (S3 CopyObject with
//! `MetadataDirective: REPLACE`; the fs backend copies the file), guarded by the object's ETag so a
//! concurrent overwrite is never paired with the old object's envelope. The body is never downloaded.

use crate::backend::{ObjectHead, PutOptions};
use crate::core::envelope::ObjectIdentity;
use crate::core::error::{CoreError, CoreResult};
use crate::core::keys::chain::{parse_tenant_key_id, scope_part, KeyScope};
use crate::core::keys::WrappedKey;
use crate::core::service::{decode_envelope, key_error, BlobService};
use crate::core::stored::ENVELOPE_META;
use crate::core::tenant::{Placement, Tenant};

/// What [`BlobService::rewrap_object`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewrapOutcome {
    /// The envelope now names the current tenant key.
    Rewrapped { from: String, to: String },
    /// The object already used the current tenant key.
    AlreadyCurrent,
    /// The object is under a data subject's key, which has one version only: nothing to do.
    SubjectKey,
}

/// The id of the lifetime key an object's envelope names (`tenant:3`, `subject:<hash>`), read
/// without unwrapping anything.
pub fn stored_key_id(head: &ObjectHead) -> CoreResult<String> {
    Ok(decode_envelope(head)?.0.kek_id)
}

impl BlobService {
    /// Re-wraps the data key of `key` (as `head` shows it, on placement `p`) under the tenant's
    /// current key `current` (`tenant:N`). The object is authenticated first (its data key must
    /// unwrap and commit), then copied onto itself with the new envelope if its ETag is unchanged.
    pub async fn rewrap_object(
        &self,
        tenant: &Tenant,
        bucket: &str,
        p: &Placement,
        key: &str,
        head: &ObjectHead,
        current: &str,
    ) -> CoreResult<RewrapOutcome> {
        let from = stored_key_id(head)?;
        if parse_tenant_key_id(scope_part(&from)).is_none() {
            return Ok(RewrapOutcome::SubjectKey);
        }
        if scope_part(&from) == current {
            return Ok(RewrapOutcome::AlreadyCurrent);
        }
        let id = ObjectIdentity { tenant: &tenant.name, bucket, key };
        let opened = self.open_envelope(tenant, &id, head).await?;
        let mut envelope = opened.envelope;
        let aad = envelope.wrap_aad(&id);
        // The deadline day (if the object is bound to one) stays: only the tenant key changes.
        let period = crate::core::governance::stored_deadline(&head.metadata).ok().flatten().map(|d| d.date());
        let wrapped: WrappedKey =
            self.keys().wrap(&tenant.name, &KeyScope::Tenant, period, &opened.dek, &aad).await.map_err(key_error)?;
        if scope_part(&wrapped.kek_id) != current {
            // The current key moved on while we ran (another rotation): let the next run do it.
            return Err(CoreError::InvalidRequest(format!(
                "the current tenant key changed to {} during the rewrap",
                wrapped.kek_id
            )));
        }
        envelope.kek_id = wrapped.kek_id.clone();
        envelope.wrapped_dek = wrapped.blob;
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, envelope.encode()?);
        let mut metadata = head.metadata.clone();
        metadata.insert(ENVELOPE_META.to_owned(), encoded);
        // A copy replaces the tags (the retention stamp among them): carry them over.
        let tags = match p.backend.get_tags(&p.bucket, key, None).await {
            Ok(tags) => tags,
            Err(crate::backend::BackendError::NotSupported(_)) => Default::default(),
            Err(e) => return Err(e.into()),
        };
        let opts = PutOptions {
            metadata,
            headers: head.headers.clone(),
            if_none_match_any: false,
            source_if_match: Some(head.meta.etag.clone()),
            tags,
        };
        p.backend.copy(&p.bucket, key, None, &p.bucket, key, opts).await?;
        Ok(RewrapOutcome::Rewrapped { from, to: wrapped.kek_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend as _;
    use crate::core::service::PutRequest;
    use crate::core::test_support::{body, fixture};

    #[tokio::test]
    async fn rewrap_changes_only_the_envelope_and_keeps_the_object_readable() {
        let f = fixture();
        f.svc.create_bucket(&f.alpha, "x", None).await.unwrap();
        let plain = vec![7u8; 100_000];
        f.svc.put_object(&f.alpha, "x", "a", body(&plain), plain.len() as u64, PutRequest::default()).await.unwrap();
        let p = f.svc.place(&f.alpha, "x").unwrap();
        let head = f.backend.head("alpha-x", "a", None).await.unwrap();
        assert_eq!(stored_key_id(&head).unwrap(), "tenant:1");
        let before =
            crate::core::test_support::read(f.backend.get("alpha-x", "a", Default::default()).await.unwrap().body)
                .await
                .unwrap();
        assert_eq!(
            f.svc.rewrap_object(&f.alpha, "x", &p, "a", &head, "tenant:1").await.unwrap(),
            RewrapOutcome::AlreadyCurrent
        );
        // A second tenant key: what `keys rotate` makes.
        let keys = f.svc.keys();
        let root = keys.load_state("alpha").await.unwrap().current_root().cloned().unwrap();
        keys.create_lifetime("alpha", "tenant:2", &root).await.unwrap();
        keys.forget("alpha", &[]);
        let out = f.svc.rewrap_object(&f.alpha, "x", &p, "a", &head, "tenant:2").await.unwrap();
        assert_eq!(out, RewrapOutcome::Rewrapped { from: "tenant:1".into(), to: "tenant:2".into() });
        let after = f.backend.head("alpha-x", "a", None).await.unwrap();
        assert_eq!(stored_key_id(&after).unwrap(), "tenant:2");
        let bytes =
            crate::core::test_support::read(f.backend.get("alpha-x", "a", Default::default()).await.unwrap().body)
                .await
                .unwrap();
        assert_eq!(bytes, before, "ciphertext untouched");
        let got = f.svc.get_object(&f.alpha, "x", "a", None, None, None).await.unwrap();
        assert_eq!(crate::core::test_support::read(got.body).await.unwrap(), plain);
        // The stale head (old ETag) no longer matches after an overwrite: the copy is refused.
        f.svc.put_object(&f.alpha, "x", "a", body(b"new"), 3, PutRequest::default()).await.unwrap();
        let stale = f.svc.rewrap_object(&f.alpha, "x", &p, "a", &head, "tenant:2").await;
        assert!(stale.is_err(), "{stale:?}");
        let got = f.svc.get_object(&f.alpha, "x", "a", None, None, None).await.unwrap();
        assert_eq!(crate::core::test_support::read(got.body).await.unwrap(), b"new");
    }
}
