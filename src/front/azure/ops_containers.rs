//! Container operations (a container is one of the tenant's buckets) and Get Account Information.

use http::{HeaderMap, StatusCode};

use super::conditions::{self, Current};
use super::headers::{self, put};
use super::{empty, AzureError, Ctx, Response};

/// Get Account Information: what kind of account this looks like to a client.
pub fn account_info() -> Response {
    let mut h = HeaderMap::new();
    put(&mut h, "x-ms-sku-name", "Standard_LRS");
    put(&mut h, "x-ms-account-kind", "StorageV2");
    put(&mut h, "x-ms-is-hns-enabled", "false");
    empty(StatusCode::OK, h)
}

/// A container's ETag and Last-Modified: derived from its name and creation time (containers carry no
/// version of their own here).
struct Stamp {
    etag: String,
    created: time::OffsetDateTime,
}

async fn current(cx: &Ctx<'_>, container: &str) -> Result<Stamp, AzureError> {
    let buckets = cx.core.list_buckets(&cx.tenant).await.map_err(|e| cx.core_err(e))?;
    let created = buckets.iter().find(|b| b.name == container).map(|b| b.created);
    let created = created.unwrap_or_else(time::OffsetDateTime::now_utc);
    let tag = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{container}\n{created}").as_bytes());
    Ok(Stamp { etag: format!("0x{}", hex::encode_upper(tag.as_ref().get(..8).unwrap_or_default())), created })
}

async fn stamp(cx: &Ctx<'_>, container: &str) -> Result<HeaderMap, AzureError> {
    let now = current(cx, container).await?;
    let mut h = HeaderMap::new();
    put(&mut h, "etag", &headers::quoted(&now.etag));
    put(&mut h, "last-modified", &headers::http_date(now.created));
    Ok(h)
}

/// `If-Modified-Since` / `If-Unmodified-Since` (and ETag conditions) on a container write.
async fn check_conditions(cx: &Ctx<'_>, container: &str) -> Result<(), AzureError> {
    if !conditions::any(cx.headers) {
        return Ok(());
    }
    let now = current(cx, container).await?;
    conditions::check(cx.headers, Some(Current { etag: &now.etag, last_modified: now.created }), false)
}

/// Azure's container names: 3-63 of `a-z`, `0-9` and single `-` inside (stricter than S3's bucket names,
/// which may hold dots: such buckets stay reachable, but the Azure front end does not create them).
fn check_container_name(name: &str) -> Result<(), AzureError> {
    if !(3..=63).contains(&name.len()) {
        return Err(AzureError::bad_request(
            "OutOfRangeInput",
            "The specified resource name length is not within the permissible limits.",
        ));
    }
    let chars_ok = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !chars_ok || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(AzureError::bad_request(
            "InvalidResourceName",
            "The specified resource name contains invalid characters.",
        ));
    }
    Ok(())
}

pub async fn create(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let container = cx.container()?;
    check_container_name(container)?;
    // A malformed request is a 400 whatever else it asks for.
    let metadata = headers::metadata(cx.headers)?;
    crate::core::service::BlobService::check_metadata_for(&metadata).map_err(|e| cx.core_err(e))?;
    if headers::text(cx.headers, "x-ms-blob-public-access").is_some_and(|v| !v.is_empty()) {
        return Err(AzureError::unsupported("Public (anonymous) access to containers"));
    }
    if headers::text(cx.headers, "x-ms-default-encryption-scope").is_some() {
        return Err(AzureError::unsupported("Encryption scopes"));
    }
    cx.core.create_bucket(&cx.tenant, container, None).await.map_err(|e| cx.core_err(e))?;
    if !metadata.is_empty() {
        cx.core.set_container_metadata(&cx.tenant, container, metadata).await.map_err(|e| cx.core_err(e))?;
    }
    Ok(empty(StatusCode::CREATED, stamp(cx, container).await?))
}

pub async fn delete(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let container = cx.container()?;
    check_conditions(cx, container).await?;
    cx.core.delete_bucket_and_objects(&cx.tenant, container, MAX_DELETED_BLOBS).await.map_err(|e| cx.core_err(e))?;
    Ok(empty(StatusCode::ACCEPTED, HeaderMap::new()))
}

/// How many blobs one Delete Container removes at most (a bigger one answers 409 and keeps the rest).
const MAX_DELETED_BLOBS: usize = 1_000_000;

pub async fn properties(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let container = cx.container()?;
    let metadata = cx.core.container_metadata(&cx.tenant, container).await.map_err(|e| cx.core_err(e))?;
    let mut h = stamp(cx, container).await?;
    for (k, v) in &metadata {
        put(&mut h, &format!("{}{k}", headers::META_PREFIX), v);
    }
    put(&mut h, "x-ms-lease-state", "available");
    put(&mut h, "x-ms-lease-status", "unlocked");
    put(&mut h, "x-ms-has-immutability-policy", "false");
    put(&mut h, "x-ms-has-legal-hold", "false");
    put(&mut h, "x-ms-default-encryption-scope", "$account-encryption-key");
    put(&mut h, "x-ms-deny-encryption-scope-override", "false");
    Ok(empty(StatusCode::OK, h))
}

pub async fn set_metadata(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let container = cx.container()?;
    let metadata = headers::metadata(cx.headers)?;
    check_conditions(cx, container).await?;
    cx.core.set_container_metadata(&cx.tenant, container, metadata).await.map_err(|e| cx.core_err(e))?;
    Ok(empty(StatusCode::OK, stamp(cx, container).await?))
}
