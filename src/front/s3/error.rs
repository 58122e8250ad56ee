//! `CoreError` → S3 error: the one place the S3 front end decides what a client sees.
//!
//! Key, format and integrity failures become a generic error carrying no internals; the details
//! go to the log (with the request's trace span).

use s3s::{S3Error, S3ErrorCode};

use crate::backend::BackendError;
use crate::core::error::CoreError;
use crate::core::keys::KeyError;

/// Awaits a core call on `buckets` and maps its error, first turning a "no such bucket" for a name
/// another tenant holds into AccessDenied (see `BlobService::explain_missing_bucket`).
macro_rules! core_call {
    ($core:expr, $tenant:expr, $buckets:expr, $call:expr) => {
        match $call.await {
            Ok(v) => v,
            Err(e) => {
                let e = $core.explain_missing_bucket($tenant, $buckets, e).await;
                return Err($crate::front::s3::error::to_s3_error(e));
            }
        }
    };
}
pub(crate) use core_call;

/// Maps a core error to the S3 error the client receives.
pub fn to_s3_error(err: CoreError) -> S3Error {
    use S3ErrorCode as C;
    match err {
        CoreError::UnknownTenant => S3Error::with_message(C::AccessDenied, "Access Denied"),
        CoreError::BucketNotOwned(_) => S3Error::with_message(C::AccessDenied, "Access Denied"),
        CoreError::Residency(why) => S3Error::with_message(C::AccessDenied, why),
        CoreError::RetentionRefused(why) => S3Error::with_message(C::AccessDenied, why),
        CoreError::LocationConstraint(why) => S3Error::with_message(C::IllegalLocationConstraintException, why),
        CoreError::BackendFenced { backend, reason } => {
            tracing::error!(%backend, %reason, "request refused: backend fenced");
            S3Error::with_message(
                C::ServiceUnavailable,
                "The bucket's storage backend is fenced off: its region no longer matches the configuration.",
            )
        }
        CoreError::BucketTaken(_) => S3Error::with_message(
            C::BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system.",
        ),
        CoreError::Backend(b) => backend_error(b),
        CoreError::Key(k) => key_error(k),
        CoreError::Integrity(detail) => {
            tracing::error!(%detail, "integrity check failed: refusing to release the object");
            S3Error::with_message(C::InternalError, "The stored object failed its integrity check and was not served.")
        }
        // Both are final for this object or subject: a client must not retry, so 403 (as S3 answers when an
        // SSE-KMS key is unusable), with the reason and time but no key material.
        CoreError::KeyDestroyed(why) => {
            tracing::warn!(%why, "object's key was destroyed: not readable");
            S3Error::with_message(C::AccessDenied, format!("The key of this object was destroyed: {why}"))
        }
        CoreError::WriteRefused(why) => {
            tracing::warn!(%why, "write refused by key policy");
            S3Error::with_message(C::AccessDenied, format!("Write refused: {why}"))
        }
        CoreError::NotSealed => {
            tracing::error!("object in the backend carries no blobseal envelope: refusing to serve it");
            S3Error::with_message(C::InternalError, "The stored object is not sealed by blobseal and was not served.")
        }
        CoreError::RangeNotSatisfiable { size } => {
            let mut e = S3Error::with_message(C::InvalidRange, "The requested range is not satisfiable");
            if let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{size}")) {
                let mut h = http::HeaderMap::new();
                h.insert(http::header::CONTENT_RANGE, v);
                e.set_headers(h);
            }
            e
        }
        CoreError::InvalidRequest(msg) => S3Error::with_message(C::InvalidArgument, msg),
        e @ CoreError::MetadataTooLarge { .. } => S3Error::with_message(C::MetadataTooLarge, e.to_string()),
        // AWS documents 416 InvalidPartNumber; the widely used s3-tests suite (and the clients written
        // against it) expect 400 InvalidPart, which is what S3 answers in practice.
        CoreError::InvalidPartNumber => {
            S3Error::with_message(C::InvalidPart, "The requested partnumber is not satisfiable")
        }
        CoreError::NoSuchUpload => backend_error(BackendError::NoSuchUpload),
        // Only Azure's Put Block List names blocks; S3 never gets here.
        CoreError::InvalidBlockList(msg) | CoreError::InvalidBlock(msg) => {
            S3Error::with_message(C::InvalidArgument, msg)
        }
        CoreError::NotImplemented(what) => S3Error::with_message(C::NotImplemented, what),
        CoreError::Unreachable(what) => {
            tracing::error!(what, "internal invariant broken");
            S3Error::new(C::InternalError)
        }
    }
}

fn backend_error(err: BackendError) -> S3Error {
    use S3ErrorCode as C;
    match err {
        BackendError::NoSuchKey => S3Error::with_message(C::NoSuchKey, "The specified key does not exist."),
        BackendError::NoSuchBucket => S3Error::with_message(C::NoSuchBucket, "The specified bucket does not exist"),
        BackendError::NoSuchVersion => S3Error::with_message(C::NoSuchVersion, "The specified version does not exist."),
        BackendError::BucketAlreadyExists => S3Error::with_message(
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.",
        ),
        BackendError::BucketNotEmpty => {
            S3Error::with_message(C::BucketNotEmpty, "The bucket you tried to delete is not empty")
        }
        BackendError::PreconditionFailed => S3Error::with_message(
            C::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ),
        BackendError::NoSuchUpload => S3Error::with_message(
            C::NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        ),
        BackendError::InvalidPart(detail) => S3Error::with_message(
            C::InvalidPart,
            format!("One or more of the specified parts could not be found or its entity tag did not match: {detail}"),
        ),
        BackendError::InvalidPartOrder => {
            S3Error::with_message(C::InvalidPartOrder, "The list of parts was not in ascending order.")
        }
        BackendError::EntityTooSmall => S3Error::with_message(
            C::EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size.",
        ),
        BackendError::InvalidRange => S3Error::with_message(C::InvalidRange, "The requested range is not satisfiable"),
        BackendError::PermissionDenied(detail) => {
            tracing::error!(%detail, "backend refused blobseal's credentials");
            S3Error::with_message(C::ServiceUnavailable, "The storage backend refused the request.")
        }
        BackendError::ObjectLocked(_) => {
            S3Error::with_message(C::AccessDenied, "The object is locked (Object Lock / legal hold)")
        }
        BackendError::Throttled => S3Error::with_message(C::SlowDown, "Please reduce your request rate."),
        BackendError::Unavailable(detail) => {
            tracing::warn!(%detail, "backend unavailable");
            S3Error::with_message(C::ServiceUnavailable, "The storage backend is unavailable; please retry.")
        }
        BackendError::NotSupported(what) => {
            S3Error::with_message(C::NotImplemented, format!("Not supported by this bucket's storage backend: {what}"))
        }
        BackendError::InvalidRequest(msg) => S3Error::with_message(C::InvalidArgument, msg),
        BackendError::Other { backend, message } => {
            tracing::error!(backend, %message, "backend error");
            S3Error::with_message(C::InternalError, "The storage backend failed.")
        } // `BackendError` is non-exhaustive for other crates only; new variants must be mapped here.
    }
}

fn key_error(err: KeyError) -> S3Error {
    use S3ErrorCode as C;
    match err {
        KeyError::Unavailable(detail) => {
            tracing::warn!(%detail, "key provider unavailable");
            S3Error::with_message(C::ServiceUnavailable, "The key provider is unavailable; please retry.")
        }
        KeyError::UnknownKey(id) => {
            tracing::error!(kek = %id, "object's key is unknown to the key provider");
            S3Error::with_message(C::InternalError, "The object's key is not available.")
        }
        other => {
            tracing::error!(error = %other, "key operation failed");
            S3Error::with_message(C::InternalError, "A key operation failed.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (CoreError::UnknownTenant, "AccessDenied"),
            (CoreError::Backend(BackendError::NoSuchKey), "NoSuchKey"),
            (CoreError::Backend(BackendError::Unavailable("x".into())), "ServiceUnavailable"),
            (CoreError::Key(KeyError::Unavailable("x".into())), "ServiceUnavailable"),
            (CoreError::Integrity("x".into()), "InternalError"),
            (CoreError::KeyDestroyed("shredded".into()), "AccessDenied"),
            (CoreError::WriteRefused("shredded".into()), "AccessDenied"),
            (CoreError::RangeNotSatisfiable { size: 3 }, "InvalidRange"),
            (CoreError::Backend(BackendError::BucketNotEmpty), "BucketNotEmpty"),
        ];
        for (err, code) in cases {
            assert_eq!(to_s3_error(err).code().as_str(), code);
        }
    }

    #[test]
    fn integrity_details_stay_internal() {
        let e = to_s3_error(CoreError::Integrity("segment 7 tag mismatch under key local:a:1".into()));
        assert!(!e.message().unwrap_or_default().contains("local:a:1"));
    }
}
