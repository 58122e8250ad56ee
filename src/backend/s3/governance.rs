//! What residency checks and the retention sweeper need of an S3 service, as free functions over the
//! shared SDK client: bucket creation with a region and object lock, the bucket's real region,
//! object tags, and an object version's Object Lock state.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, ObjectLockLegalHoldStatus, Tag, Tagging};
use aws_sdk_s3::Client;
use time::OffsetDateTime;

use super::blank_key::wire_key;
use super::convert::map_err;
use crate::backend::{BackendError, LockState, Result};

/// The one region that must not be named as a location constraint (and is meant when none is).
const US_EAST_1: &str = "us-east-1";

/// CreateBucket in `region`, with Object Lock if asked. In us-east-1, S3 (and moto) answer 200 to
/// re-creating a bucket we own, so existence is checked first there; two racing creates can then
/// both succeed, which is harmless.
pub(super) async fn create_bucket(client: &Client, bucket: &str, region: &str, object_lock: bool) -> Result<()> {
    let mut req = client.create_bucket().bucket(bucket);
    if region == US_EAST_1 {
        match client.head_bucket().bucket(bucket).send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket)) {
            Ok(_) => return Err(BackendError::BucketAlreadyExists),
            Err(BackendError::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
    } else {
        let loc = BucketLocationConstraint::from(region);
        req = req.create_bucket_configuration(CreateBucketConfiguration::builder().location_constraint(loc).build());
    }
    if object_lock {
        req = req.object_lock_enabled_for_bucket(true);
    }
    req.send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
    Ok(())
}

/// GetBucketLocation, normalised: no (or an empty) constraint is us-east-1, and the legacy `EU`
/// is eu-west-1.
pub(super) async fn bucket_region(client: &Client, bucket: &str) -> Result<Option<String>> {
    let out =
        client.get_bucket_location().bucket(bucket).send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
    Ok(Some(normalise_region(out.location_constraint().map(BucketLocationConstraint::as_str))))
}

fn normalise_region(constraint: Option<&str>) -> String {
    match constraint.map(str::trim) {
        None | Some("") => US_EAST_1.to_owned(),
        Some("EU") => "eu-west-1".to_owned(),
        Some(r) => r.to_owned(),
    }
}

fn not_found(version_id: Option<&str>) -> BackendError {
    if version_id.is_some() {
        BackendError::NoSuchVersion
    } else {
        BackendError::NoSuchKey
    }
}

/// GetObjectTagging. A server without tagging (s3s-fs) answers NotImplemented: `NotSupported`.
pub(super) async fn get_tags(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<BTreeMap<String, String>> {
    let out = client
        .get_object_tagging()
        .bucket(bucket)
        .key(wire_key(key))
        .set_version_id(version_id.map(str::to_owned))
        .send()
        .await
        .map_err(|e| map_err(e, not_found(version_id)))?;
    Ok(out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect())
}

/// PutObjectTagging with the whole new tag set; an empty set is DeleteObjectTagging (same effect on
/// S3; moto 5.2 answers 500 to an empty `<TagSet>`).
pub(super) async fn put_tags(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    if tags.is_empty() {
        client
            .delete_object_tagging()
            .bucket(bucket)
            .key(wire_key(key))
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_err(e, not_found(version_id)))?;
        return Ok(());
    }
    let bad = |e: aws_sdk_s3::error::BuildError| BackendError::InvalidRequest(format!("tag set: {e}"));
    let set =
        tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(bad)).collect::<Result<Vec<_>>>()?;
    let tagging = Tagging::builder().set_tag_set(Some(set)).build().map_err(bad)?;
    client
        .put_object_tagging()
        .bucket(bucket)
        .key(wire_key(key))
        .set_version_id(version_id.map(str::to_owned))
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| map_err(e, not_found(version_id)))?;
    Ok(())
}

/// The lock fields of HeadObject (moto 5.2 has no GetObjectRetention but reports retention and
/// legal hold here, as S3 does to a caller allowed to read them). Absent fields mean unlocked.
pub(super) async fn lock_state(
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<LockState> {
    let out = client
        .head_object()
        .bucket(bucket)
        .key(wire_key(key))
        .set_version_id(version_id.map(str::to_owned))
        .send()
        .await
        .map_err(|e| map_err(e, not_found(version_id)))?;
    let retain_until = match out.object_lock_retain_until_date() {
        None => None,
        Some(t) => Some(OffsetDateTime::from_unix_timestamp_nanos(t.as_nanos()).map_err(|_| BackendError::Other {
            backend: "s3",
            message: format!("retain-until date out of range: {t}"),
        })?),
    };
    Ok(LockState {
        mode: out.object_lock_mode().map(|m| m.as_str().to_owned()),
        retain_until,
        legal_hold: out.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
    })
}

/// Whether an error of DeleteObject that named a version is S3's refusal of a locked version: S3
/// answers 403 `AccessDenied` for those. Other 403s (bad signature, unknown key id) keep their code.
/// An IAM policy that denies `s3:DeleteObjectVersion` also answers `AccessDenied` and is reported as
/// locked too: S3's answer does not tell the two apart.
pub(super) fn locked_version(err: BackendError, key: &str, version_id: &str) -> BackendError {
    match err {
        BackendError::PermissionDenied(code) if code == "AccessDenied" => {
            BackendError::ObjectLocked(format!("the service refused deleting version {version_id} of {key:?}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_normalised() {
        assert_eq!(normalise_region(None), "us-east-1");
        assert_eq!(normalise_region(Some("")), "us-east-1");
        assert_eq!(normalise_region(Some("EU")), "eu-west-1");
        assert_eq!(normalise_region(Some("eu-central-1")), "eu-central-1");
    }

    #[test]
    fn only_access_denied_is_a_lock() {
        let e = locked_version(BackendError::PermissionDenied("AccessDenied".into()), "k", "v1");
        assert!(matches!(e, BackendError::ObjectLocked(_)), "{e:?}");
        let e = locked_version(BackendError::PermissionDenied("SignatureDoesNotMatch".into()), "k", "v1");
        assert!(matches!(e, BackendError::PermissionDenied(_)), "{e:?}");
        let e = locked_version(BackendError::NoSuchBucket, "k", "v1");
        assert!(matches!(e, BackendError::NoSuchBucket), "{e:?}");
    }
}
