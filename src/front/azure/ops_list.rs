//! List Containers and List Blobs. Markers are opaque to clients: a container name, or the backend's
//! continuation token (base64url). Listed blob properties (plaintext size, content headers, MD5,
//! metadata) are authenticated: each listed blob's envelope is opened, up to 16 at a time.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::StreamExt as _;
use http::{HeaderMap, StatusCode};

use super::headers::http_date;
use super::xml::Writer;
use super::{xml_response, AzureError, Ctx, Response};
use crate::backend::ListOptions;
use crate::core::service::ObjectInfo;

/// Azure's default and largest page.
const MAX_RESULTS: usize = 5000;
/// The most objects one backend page holds.
const BACKEND_PAGE: usize = 1000;
/// Envelopes opened at once while listing.
const LIST_CONCURRENCY: usize = 16;

fn max_results(cx: &Ctx<'_>) -> Result<usize, AzureError> {
    match cx.query.get("maxresults") {
        None => Ok(MAX_RESULTS),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(MAX_RESULTS)),
            _ => Err(AzureError::bad_request("OutOfRangeQueryParameterValue", "maxresults must be at least 1.")),
        },
    }
}

fn includes(cx: &Ctx<'_>) -> Vec<String> {
    cx.query.get("include").map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect()).unwrap_or_default()
}

pub async fn list_containers(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let prefix = cx.query.get("prefix").unwrap_or("");
    let marker = cx.query.get("marker").unwrap_or("");
    let max = max_results(cx)?;
    let with_metadata = includes(cx).iter().any(|i| i == "metadata");
    let buckets = cx.core.list_buckets(&cx.tenant).await.map_err(|e| cx.core_err(e))?;
    let mut matching = buckets.into_iter().filter(|b| b.name.starts_with(prefix) && b.name.as_str() > marker);
    let page: Vec<_> = matching.by_ref().take(max).collect();
    let next = if matching.next().is_some() { page.last().map(|b| b.name.clone()) } else { None };
    let mut w = Writer::new();
    w.open_with("EnumerationResults", &[("ServiceEndpoint", &cx.endpoint)]);
    w.leaf("Prefix", prefix).leaf("Marker", marker).leaf("MaxResults", &max.to_string());
    w.open("Containers");
    for b in &page {
        w.open("Container").leaf("Name", &b.name).open("Properties");
        w.leaf("Last-Modified", &http_date(b.created));
        let tag =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{}\n{}", b.name, b.created).as_bytes());
        w.leaf("Etag", &format!("\"0x{}\"", hex::encode_upper(tag.as_ref().get(..8).unwrap_or_default())));
        w.leaf("LeaseStatus", "unlocked").leaf("LeaseState", "available");
        w.leaf("HasImmutabilityPolicy", "false").leaf("HasLegalHold", "false");
        w.close("Properties");
        if with_metadata {
            let meta = cx.core.container_metadata(&cx.tenant, &b.name).await.map_err(|e| cx.core_err(e))?;
            w.open("Metadata");
            for (k, v) in meta.iter().filter(|(k, _)| super::xml::is_name(k)) {
                w.leaf(k, v);
            }
            w.close("Metadata");
        }
        w.close("Container");
    }
    w.close("Containers").leaf("NextMarker", next.as_deref().unwrap_or("")).close("EnumerationResults");
    Ok(xml_response(StatusCode::OK, HeaderMap::new(), w.finish()))
}

pub async fn list_blobs(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let container = cx.container()?;
    let prefix = cx.query.get("prefix").unwrap_or("").to_owned();
    let delimiter = cx.query.get("delimiter").filter(|d| !d.is_empty()).map(str::to_owned);
    let marker = cx.query.get("marker").unwrap_or("").to_owned();
    let max = max_results(cx)?;
    let include = includes(cx);
    if include.iter().any(|i| matches!(i.as_str(), "versions" | "deleted" | "deletedwithversions")) {
        return Err(AzureError::unsupported("Listing blob versions or deleted blobs"));
    }
    // Staged blocks are kept under a digest of their blob's name (names can hold a data subject's id),
    // so the names of blobs that have only staged blocks cannot be listed: refused rather than left out.
    if include.iter().any(|i| i == "uncommittedblobs") {
        return Err(AzureError::unsupported(
            "Listing blobs that have only uncommitted blocks (include=uncommittedblobs)",
        ));
    }
    let (with_metadata, with_tags) = (include.iter().any(|i| i == "metadata"), include.iter().any(|i| i == "tags"));
    let continuation = if marker.is_empty() {
        None
    } else {
        let bad = || AzureError::bad_request("OutOfRangeInput", "The marker is not one this service gave out.");
        let raw = URL_SAFE_NO_PAD.decode(&marker).map_err(|_| bad())?;
        Some(String::from_utf8(raw).map_err(|_| bad())?)
    };
    let opts = ListOptions {
        prefix: prefix.clone(),
        delimiter: delimiter.clone(),
        start_after: None,
        continuation,
        max_keys: max.min(BACKEND_PAGE),
    };
    let page = cx.core.list_objects(&cx.tenant, container, opts).await.map_err(|e| cx.core_err(e))?;
    // Owned inputs: the stream is polled inside the connection's task, which must be Send for any lifetime.
    let keys: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
    let (core, tenant, bucket) =
        (std::sync::Arc::clone(cx.core), std::sync::Arc::clone(&cx.tenant), container.to_owned());
    // Each listed blob's properties and tags (Azure lists a blob's tag count whether or not tags are asked for).
    let infos: Vec<(Option<ObjectInfo>, BTreeMap<String, String>)> = futures::stream::iter(keys)
        .map(move |key| {
            let (core, tenant, bucket) = (std::sync::Arc::clone(&core), std::sync::Arc::clone(&tenant), bucket.clone());
            async move {
                let (info, tags) = tokio::join!(
                    core.head_object(&tenant, &bucket, &key, None),
                    core.object_tags(&tenant, &bucket, &key)
                );
                let info = match info {
                    Ok(info) => Some(info),
                    Err(e) => {
                        tracing::warn!(error = %e, "listed blob could not be opened; listed without its properties");
                        None
                    }
                };
                (info, tags.unwrap_or_default())
            }
        })
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
    let mut w = Writer::new();
    w.open_with("EnumerationResults", &[("ServiceEndpoint", &cx.endpoint), ("ContainerName", container)]);
    w.leaf("Prefix", &prefix).leaf("Marker", &marker).leaf("MaxResults", &max.to_string());
    w.leaf_opt("Delimiter", delimiter.as_deref());
    w.open("Blobs");
    // Blobs and prefixes interleaved in name order, as Azure lists them.
    let mut prefixes = page.common_prefixes.iter().peekable();
    for (o, (info, tags)) in page.objects.iter().zip(&infos) {
        while let Some(p) = prefixes.next_if(|p| p.as_str() < o.key.as_str()) {
            w.open("BlobPrefix").leaf("Name", p).close("BlobPrefix");
        }
        w.open("Blob").leaf("Name", &o.key).open("Properties");
        let modified = info.as_ref().map_or(o.last_modified, |i| i.last_modified);
        w.leaf("Creation-Time", &http_date(modified)).leaf("Last-Modified", &http_date(modified));
        // Bare in blob listings, as Azure writes it (Get Blob's header is quoted).
        w.leaf("Etag", &info.as_ref().map_or_else(|| o.etag.clone(), super::headers::info_etag));
        w.leaf("Content-Length", &info.as_ref().map_or(o.size, |i| i.size).to_string());
        let h = info.as_ref().map(|i| i.headers.clone()).unwrap_or_default();
        w.leaf("Content-Type", h.content_type.as_deref().unwrap_or("application/octet-stream"));
        w.leaf("Content-Encoding", h.content_encoding.as_deref().unwrap_or(""));
        w.leaf("Content-Language", h.content_language.as_deref().unwrap_or(""));
        w.leaf("Content-CRC64", "");
        w.leaf("Content-MD5", info.as_ref().and_then(|i| i.content_md5.as_deref()).unwrap_or(""));
        w.leaf("Cache-Control", h.cache_control.as_deref().unwrap_or(""));
        w.leaf("Content-Disposition", h.content_disposition.as_deref().unwrap_or(""));
        w.leaf("BlobType", "BlockBlob").leaf("AccessTier", "Hot").leaf("AccessTierInferred", "true");
        w.leaf("LeaseStatus", "unlocked").leaf("LeaseState", "available").leaf("ServerEncrypted", "true");
        if !tags.is_empty() {
            w.leaf("TagCount", &tags.len().to_string());
        }
        w.close("Properties");
        if with_metadata {
            w.open("Metadata");
            for (k, v) in info.as_ref().map(|i| i.metadata.clone()).unwrap_or_default() {
                if super::xml::is_name(&k) {
                    w.leaf(&k, &v);
                }
            }
            w.close("Metadata");
        }
        if with_tags && !tags.is_empty() {
            w.open("Tags").open("TagSet");
            for (k, v) in tags {
                w.open("Tag").leaf("Key", k).leaf("Value", v).close("Tag");
            }
            w.close("TagSet").close("Tags");
        }
        w.close("Blob");
    }
    for p in prefixes {
        w.open("BlobPrefix").leaf("Name", p).close("BlobPrefix");
    }
    w.close("Blobs");
    let next = page.next_token.filter(|_| page.is_truncated).map(|t| URL_SAFE_NO_PAD.encode(t));
    w.leaf("NextMarker", next.as_deref().unwrap_or("")).close("EnumerationResults");
    Ok(xml_response(StatusCode::OK, HeaderMap::new(), w.finish()))
}
