//! `CoreError` → Azure error: the one place the Azure front end decides what a client sees.
//!
//! Azure carries an error three ways: the status, the `x-ms-error-code` header (the only carrier on
//! HEAD, which has no body) and an XML body `<Error><Code/><Message/></Error>`. Key, format and
//! integrity failures become a generic `InternalError` carrying no internals; the details go to the log.

use http::StatusCode;

use crate::backend::BackendError;
use crate::core::error::CoreError;
use crate::core::keys::KeyError;

/// An error as the Azure client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureError {
    pub status: StatusCode,
    /// Azure's error code (`BlobNotFound`, `AuthenticationFailed`, ...).
    pub code: &'static str,
    pub message: String,
    /// `Content-Range: bytes */<size>` on a 416.
    pub size: Option<u64>,
}

impl AzureError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), size: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Every authentication failure: 403, as Azure answers (rclone retries a 401).
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            format!(
                "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature. {}",
                message.into()
            ),
        )
    }

    /// A SAS that authenticates but does not grant this operation.
    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationPermissionMismatch", message)
    }

    /// A feature blobseal's Azure front end does not offer (yet).
    pub fn unsupported(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("{what} is not supported by blobseal's Azure Blob front end (see README, \"Azure Blob\")."),
        )
    }

    pub fn condition_not_met() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "ConditionNotMet",
            "The condition specified using HTTP conditional header(s) is not met.",
        )
    }
}

/// What a request addressed, to name the missing thing: a container or a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    Account,
    Container,
    Blob,
}

/// Maps a core error to the Azure error the client receives.
pub fn from_core(err: CoreError, addressed: Addressed) -> AzureError {
    use StatusCode as S;
    match err {
        CoreError::UnknownTenant => AzureError::auth("Unknown account."),
        // Another tenant's container: the caller learns nothing about it.
        CoreError::BucketNotOwned(_) => container_not_found(),
        CoreError::Residency(why) | CoreError::RetentionRefused(why) => {
            AzureError::new(S::FORBIDDEN, "AuthorizationFailure", why)
        }
        CoreError::LocationConstraint(why) => AzureError::bad_request("InvalidInput", why),
        CoreError::BackendFenced { backend, reason } => {
            tracing::error!(%backend, %reason, "request refused: backend fenced");
            AzureError::new(
                S::SERVICE_UNAVAILABLE,
                "ServerBusy",
                "The container's storage backend is fenced off: its region no longer matches the configuration.",
            )
        }
        CoreError::BucketTaken(_) => {
            AzureError::new(S::CONFLICT, "ContainerAlreadyExists", "The specified container already exists.")
        }
        CoreError::Backend(b) => backend_error(b, addressed),
        CoreError::Key(k) => key_error(k),
        CoreError::Integrity(detail) => {
            tracing::error!(%detail, "integrity check failed: refusing to release the blob");
            internal("The stored blob failed its integrity check and was not served.")
        }
        CoreError::KeyDestroyed(why) => {
            tracing::warn!(%why, "blob's key was destroyed: not readable");
            AzureError::new(S::FORBIDDEN, "AuthorizationFailure", format!("The key of this blob was destroyed: {why}"))
        }
        CoreError::WriteRefused(why) => {
            tracing::warn!(%why, "write refused by key policy");
            AzureError::new(S::FORBIDDEN, "AuthorizationFailure", format!("Write refused: {why}"))
        }
        CoreError::NotSealed => {
            tracing::error!("blob in the backend carries no blobseal envelope: refusing to serve it");
            internal("The stored blob is not sealed by blobseal and was not served.")
        }
        CoreError::RangeNotSatisfiable { size } => AzureError {
            size: Some(size),
            ..AzureError::new(
                S::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            )
        },
        CoreError::InvalidRequest(msg) => AzureError::bad_request("InvalidInput", msg),
        e @ CoreError::MetadataTooLarge { .. } => AzureError::bad_request("MetadataTooLarge", e.to_string()),
        CoreError::InvalidPartNumber => AzureError::bad_request("InvalidInput", "no such part"),
        CoreError::InvalidBlockList(msg) => {
            AzureError::bad_request("InvalidBlockList", format!("The specified block list is invalid. {msg}"))
        }
        CoreError::InvalidBlock(msg) => AzureError::bad_request(
            "InvalidBlobOrBlock",
            format!("The specified blob or block content is invalid. {msg}"),
        ),
        CoreError::NoSuchUpload => AzureError::bad_request("InvalidBlockList", "The specified block list is invalid."),
        CoreError::NotImplemented(what) => AzureError::unsupported(what),
        CoreError::Unreachable(what) => {
            tracing::error!(what, "internal invariant broken");
            internal("Server encountered an internal error. Please try again after some time.")
        }
    }
}

fn internal(message: &str) -> AzureError {
    AzureError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
}

fn container_not_found() -> AzureError {
    AzureError::new(StatusCode::NOT_FOUND, "ContainerNotFound", "The specified container does not exist.")
}

fn key_error(e: KeyError) -> AzureError {
    tracing::error!(error = %e, "key provider failed: request refused");
    AzureError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServerBusy",
        "The key service is unavailable; the request was refused. Please retry.",
    )
}

fn backend_error(err: BackendError, addressed: Addressed) -> AzureError {
    use StatusCode as S;
    match err {
        BackendError::NoSuchKey | BackendError::NoSuchVersion => {
            AzureError::new(S::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.")
        }
        BackendError::NoSuchBucket => container_not_found(),
        BackendError::BucketAlreadyExists => {
            AzureError::new(S::CONFLICT, "ContainerAlreadyExists", "The specified container already exists.")
        }
        BackendError::BucketNotEmpty => AzureError::new(
            S::CONFLICT,
            "ContainerBeingDeleted",
            "The container still holds blob versions blobseal cannot delete through Azure; delete them first.",
        ),
        BackendError::PreconditionFailed => match addressed {
            // `If-None-Match: *` on a write that found the blob there.
            Addressed::Blob => AzureError::new(S::CONFLICT, "BlobAlreadyExists", "The specified blob already exists."),
            _ => AzureError::condition_not_met(),
        },
        BackendError::NoSuchUpload | BackendError::InvalidPart(_) | BackendError::InvalidPartOrder => {
            AzureError::bad_request("InvalidBlockList", "The specified block list is invalid.")
        }
        BackendError::EntityTooSmall => AzureError::bad_request("InvalidInput", "block too small for the backend"),
        BackendError::InvalidRange => AzureError::new(
            S::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        ),
        BackendError::PermissionDenied(detail) => {
            tracing::error!(%detail, "backend refused blobseal's credentials");
            AzureError::new(S::SERVICE_UNAVAILABLE, "ServerBusy", "The storage backend refused the request.")
        }
        BackendError::ObjectLocked(_) => AzureError::new(
            S::CONFLICT,
            "BlobImmutableDueToPolicy",
            "The blob is locked by a retention policy or legal hold.",
        ),
        BackendError::Throttled => {
            AzureError::new(S::SERVICE_UNAVAILABLE, "ServerBusy", "The server is busy. Please retry.")
        }
        BackendError::Unavailable(detail) => {
            tracing::warn!(%detail, "backend unavailable");
            AzureError::new(S::SERVICE_UNAVAILABLE, "ServerBusy", "The storage backend is unavailable; please retry.")
        }
        BackendError::NotSupported(what) => {
            AzureError::unsupported(&format!("{what} on this container's storage backend"))
        }
        BackendError::InvalidRequest(msg) => AzureError::bad_request("InvalidInput", msg),
        BackendError::Other { backend, message } => {
            tracing::error!(backend, %message, "backend error");
            internal("The storage backend failed.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_things_are_named_by_what_was_addressed() {
        let e = from_core(CoreError::Backend(BackendError::NoSuchKey), Addressed::Blob);
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "BlobNotFound"));
        let e = from_core(CoreError::Backend(BackendError::NoSuchBucket), Addressed::Blob);
        assert_eq!(e.code, "ContainerNotFound");
        let e = from_core(CoreError::Backend(BackendError::PreconditionFailed), Addressed::Blob);
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "BlobAlreadyExists"));
        let e = from_core(CoreError::RangeNotSatisfiable { size: 0 }, Addressed::Blob);
        assert_eq!((e.status, e.size), (StatusCode::RANGE_NOT_SATISFIABLE, Some(0)));
    }

    #[test]
    fn internals_do_not_reach_the_client() {
        let e = from_core(CoreError::Integrity("segment 7 tag mismatch".into()), Addressed::Blob);
        assert_eq!(e.code, "InternalError");
        assert!(!e.message.contains("segment 7"));
        let e = from_core(CoreError::BucketNotOwned("other".into()), Addressed::Container);
        assert_eq!(e.code, "ContainerNotFound");
    }
}
