//! Blob operations: Put Blob, Get Blob, Get Blob Properties, Delete Blob, Set Blob Metadata/Properties,
//! blob tags and Copy Blob.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use md5::Digest as _;

use super::auth::{Accounts, Caller, WriteMode};
use super::body::{self, Checks, Mismatch};
use super::conditions::{self, Current};
use super::headers::{self, put as set};
use super::if_tags::{self, TagCondition};
use super::sas::Level;
use super::{empty, read_small_body, stream_body, xml, xml_response, Account, AzureError, Ctx, Response};
use crate::backend::BackendError;
use crate::core::error::CoreError;
use crate::core::object_properties::PropertiesChange;
use crate::core::service::{CopyMode, CopySource, ObjectInfo, PutOutcome, PutRequest};

/// Azure's largest Put Blob (5000 MiB).
pub const MAX_PUT_BLOB: u64 = 5000 * 1024 * 1024;
/// Largest Put Blob body read whole to learn its MD5 before writing (one segment).
const SMALL_PUT: u64 = 64 * 1024;
/// Largest range whose MD5 a client may ask for (`x-ms-range-get-content-md5`).
const MAX_RANGE_MD5: u64 = 4 * 1024 * 1024;

/// The request's `Content-Length`, required on writes with a body.
pub fn content_length(cx: &Ctx<'_>, max: u64) -> Result<u64, AzureError> {
    let len = headers::text(cx.headers, "content-length")
        .ok_or_else(|| {
            AzureError::new(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLengthHeader",
                "The Content-Length header is required.",
            )
        })?
        .parse::<u64>()
        .map_err(|_| AzureError::bad_request("InvalidHeaderValue", "Content-Length is not a number."))?;
    if len > max {
        return Err(AzureError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is too large and exceeds the maximum permissible limit ({max} bytes)."),
        ));
    }
    Ok(len)
}

/// A checksum refusal as Azure words it.
pub fn mismatch_error(m: Mismatch) -> AzureError {
    match m {
        Mismatch::Md5 => AzureError::bad_request(
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        ),
        Mismatch::Crc64 => AzureError::bad_request(
            "Crc64Mismatch",
            "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.",
        ),
        Mismatch::Length => AzureError::bad_request("InvalidInput", "The body length differs from Content-Length."),
    }
}

/// The request's `x-ms-if-tags`, parsed before any work (a malformed one is a 400).
pub fn tag_condition(cx: &Ctx<'_>) -> Result<Option<TagCondition>, AzureError> {
    tag_condition_in(cx, "x-ms-if-tags")
}

fn tag_condition_in(cx: &Ctx<'_>, header: &str) -> Result<Option<TagCondition>, AzureError> {
    match cx.headers.get(header) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                AzureError::bad_request(
                    "InvalidHeaderValue",
                    "The value for one of the HTTP headers is not in the correct format.",
                )
            })?;
            if_tags::parse(text).map(Some)
        }
    }
}

/// 412 unless `tags` meet the condition.
fn tags_meet(condition: Option<&TagCondition>, tags: &BTreeMap<String, String>) -> Result<(), AzureError> {
    match condition {
        Some(c) if !c.matches(tags) => Err(AzureError::condition_not_met()),
        _ => Ok(()),
    }
}

/// Checks `x-ms-if-tags` against the blob's tags as they are now (read only when there is a condition; a
/// blob that does not exist has none, so it meets no condition).
pub async fn check_tag_condition(cx: &Ctx<'_>, container: &str, blob: &str) -> Result<(), AzureError> {
    let Some(condition) = tag_condition(cx)? else { return Ok(()) };
    let tags = match cx.core.object_tags(&cx.tenant, container, blob).await {
        Ok(t) => t,
        Err(CoreError::Backend(BackendError::NoSuchKey)) => BTreeMap::new(),
        Err(e) => return Err(cx.core_err(e)),
    };
    tags_meet(Some(&condition), &tags)
}

/// Write conditions other than `If-None-Match: *` are checked against the blob as it is now (a HEAD
/// first: a concurrent writer between the check and the write is not excluded, see README).
pub async fn check_write_conditions(cx: &Ctx<'_>, container: &str, blob: &str) -> Result<bool, AzureError> {
    let create_only = cx.write == WriteMode::CreateOnly
        || headers::text(cx.headers, "if-none-match").is_some_and(|v| v.trim() == "*");
    let others = cx.headers.contains_key("if-match")
        || cx.headers.contains_key("if-modified-since")
        || cx.headers.contains_key("if-unmodified-since")
        || headers::text(cx.headers, "if-none-match").is_some_and(|v| v.trim() != "*");
    check_tag_condition(cx, container, blob).await?;
    if others {
        let current = match cx.core.head_object(&cx.tenant, container, blob, None).await {
            Ok(info) => Some(info),
            Err(CoreError::Backend(BackendError::NoSuchKey)) => None,
            Err(e) => return Err(cx.core_err(e)),
        };
        let etag = current.as_ref().map(headers::info_etag);
        let cur =
            current.as_ref().zip(etag.as_deref()).map(|(i, etag)| Current { etag, last_modified: i.last_modified });
        conditions::check(cx.headers, cur, false)?;
    }
    Ok(create_only)
}

fn retention_days(cx: &Ctx<'_>) -> Result<Option<u32>, AzureError> {
    match headers::text(cx.headers, "x-blobseal-retention-days") {
        None => Ok(None),
        Some(v) => v.parse::<u32>().ok().filter(|d| (1..=36500).contains(d)).map(Some).ok_or_else(|| {
            AzureError::bad_request(
                "InvalidHeaderValue",
                "x-blobseal-retention-days must be a number of days, 1 to 36500",
            )
        }),
    }
}

/// The blob's metadata, headers, tags and retention request from a write's headers.
pub fn put_request(cx: &Ctx<'_>, standard_headers: bool) -> Result<PutRequest, AzureError> {
    Ok(PutRequest {
        metadata: headers::metadata(cx.headers)?,
        headers: headers::content_headers(cx.headers, standard_headers),
        if_none_match_any: false,
        tags: headers::tags(cx.headers)?,
        retention_days: retention_days(cx)?,
        content_md5: None,
    })
}

/// The headers every successful write answers with.
pub fn written(out: &PutOutcome, md5: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    set(&mut h, "etag", &headers::quoted(&headers::azure_etag(&out.etag, out.envelope_tag.as_deref())));
    set(&mut h, "last-modified", &headers::http_date(out.last_modified.unwrap_or_else(time::OffsetDateTime::now_utc)));
    set(&mut h, "x-ms-request-server-encrypted", "true");
    if let Some(m) = md5 {
        set(&mut h, "content-md5", m);
    }
    if let Some(d) = &out.delete_after {
        set(&mut h, "x-blobseal-delete-after", d);
    }
    h
}

pub async fn put(cx: &Ctx<'_>, request_body: s3s::Body) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let len = content_length(cx, MAX_PUT_BLOB)?;
    let transactional = headers::md5_header(cx.headers, "content-md5")?;
    let declared = headers::md5_header(cx.headers, "x-ms-blob-content-md5")?;
    // The blob's declared MD5 takes precedence over the transactional one, as in Azure; either way the body is
    // checked against it, so a stored Content-MD5 always matches the bytes.
    let checks =
        Checks { md5: declared.or(transactional), crc64: headers::crc64_header(cx.headers)?, ..Checks::default() };
    let mut req = put_request(cx, true)?;
    req.if_none_match_any = check_write_conditions(cx, container, blob).await?;
    if len == 0 {
        body::check_empty(&checks).map_err(mismatch_error)?;
    }
    // The blob's stored MD5: the one the client declared, else the transactional one (verified on the way),
    // else blobseal computes it, which needs the body sealed before the blob's metadata is written.
    let mut known = declared.or(transactional).or_else(|| (len == 0).then(|| md5::Md5::new().finalize().into()));
    // A small body is read whole (after authentication, at most 64 KiB) so its MD5 is known before the write:
    // one backend write instead of a staging write and a copy.
    let request_body = if known.is_none() && len <= SMALL_PUT {
        let bytes = read_small_body(request_body, SMALL_PUT as usize).await?;
        known = Some(md5::Md5::digest(&bytes).into());
        s3s::Body::from(bytes)
    } else {
        request_body
    };
    let (stream, verdict) = body::checked(request_body, len, Checks { compute_md5: known.is_none(), ..checks });
    let result = match known {
        Some(md5) => {
            req.content_md5 = Some(STANDARD.encode(md5));
            cx.core.put_object(&cx.tenant, container, blob, stream, len, req).await
        }
        None => match cx.core.stage_blob(&cx.tenant, container, blob, stream, len, &req).await {
            Ok(staged) => {
                req.content_md5 = verdict.md5().map(|m| STANDARD.encode(m));
                cx.core.promote_staged(&cx.tenant, container, blob, staged, req).await
            }
            Err(e) => Err(e),
        },
    };
    if let Some(m) = verdict.mismatch() {
        return Err(mismatch_error(m));
    }
    let out = result.map_err(|e| cx.write_err(e))?;
    let md5 = known.or(verdict.md5()).map(|m| STANDARD.encode(m));
    let mut h = written(&out, md5.as_deref());
    if let Some(crc) = headers::text(cx.headers, "x-ms-content-crc64") {
        set(&mut h, "x-ms-content-crc64", crc);
    }
    Ok(empty(StatusCode::CREATED, h))
}

/// SAS response-header overrides (`rsct` etc.) replace the stored headers on reads.
fn apply_overrides(cx: &Ctx<'_>, h: &mut HeaderMap) {
    if let Caller::Sas(grant) = cx.caller {
        for (name, value) in &grant.overrides {
            set(h, name, value);
        }
    }
}

fn read_conditions(cx: &Ctx<'_>, info: &ObjectInfo) -> Result<(), AzureError> {
    conditions::check(cx.headers, Some(current(info).as_current()), true)
}

/// A blob's state for the conditions.
struct Now {
    etag: String,
    last_modified: time::OffsetDateTime,
}

impl Now {
    fn as_current(&self) -> Current<'_> {
        Current { etag: &self.etag, last_modified: self.last_modified }
    }
}

fn current(info: &ObjectInfo) -> Now {
    Now { etag: headers::info_etag(info), last_modified: info.last_modified }
}

pub async fn get(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let condition = tag_condition(cx)?;
    let range = headers::range(cx.headers);
    // The tags are read beside the blob: Get Blob answers with their count (and the condition needs them).
    let (got, tags) = tokio::join!(
        cx.core.get_object(&cx.tenant, container, blob, None, range, None),
        cx.core.object_tags(&cx.tenant, container, blob)
    );
    let got = got.map_err(|e| cx.core_err(e))?;
    let tags = tags.map_err(|e| cx.core_err(e))?;
    read_conditions(cx, &got.info)?;
    tags_meet(condition.as_ref(), &tags)?;
    let mut h = headers::blob_headers(&got.info, Some(tags.len()));
    copy_headers(&got.info, &mut h);
    apply_overrides(cx, &mut h);
    let size = got.info.size;
    let Some(r) = got.range.clone() else {
        set(&mut h, "content-length", &size.to_string());
        if let Some(m) = &got.info.content_md5 {
            set(&mut h, "content-md5", m);
        }
        let mut resp = empty(StatusCode::OK, h);
        *resp.body_mut() = stream_body(got.body);
        return Ok(resp);
    };
    let n = r.end - r.start;
    set(&mut h, "content-length", &n.to_string());
    set(&mut h, "content-range", &format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1)));
    if let Some(m) = &got.info.content_md5 {
        set(&mut h, "x-ms-blob-content-md5", m);
    }
    let want_md5 =
        headers::text(cx.headers, "x-ms-range-get-content-md5").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if want_md5 {
        if n > MAX_RANGE_MD5 {
            return Err(AzureError::bad_request(
                "OutOfRangeInput",
                "x-ms-range-get-content-md5 is only allowed for ranges of at most 4 MiB.",
            ));
        }
        // At most 4 MiB, authenticated as it is read; then its MD5 goes in the header.
        let bytes = read_small_body(stream_body(got.body), MAX_RANGE_MD5 as usize).await?;
        set(&mut h, "content-md5", &STANDARD.encode(md5::Md5::digest(&bytes)));
        let mut resp = empty(StatusCode::PARTIAL_CONTENT, h);
        *resp.body_mut() = s3s::Body::from(bytes);
        return Ok(resp);
    }
    let mut resp = empty(StatusCode::PARTIAL_CONTENT, h);
    *resp.body_mut() = stream_body(got.body);
    Ok(resp)
}

pub async fn properties(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let condition = tag_condition(cx)?;
    let info = cx.core.head_object(&cx.tenant, container, blob, None).await.map_err(|e| cx.core_err(e))?;
    read_conditions(cx, &info)?;
    let tags = cx.core.object_tags(&cx.tenant, container, blob).await.map_err(|e| cx.core_err(e))?;
    tags_meet(condition.as_ref(), &tags)?;
    let mut h = headers::blob_headers(&info, Some(tags.len()));
    copy_headers(&info, &mut h);
    apply_overrides(cx, &mut h);
    set(&mut h, "content-length", &info.size.to_string());
    if let Some(m) = &info.content_md5 {
        set(&mut h, "content-md5", m);
    }
    Ok(empty(StatusCode::OK, h))
}

pub async fn delete(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    if headers::text(cx.headers, "x-ms-delete-snapshots").is_some_and(|v| v == "only") {
        return Err(AzureError::unsupported("Snapshots"));
    }
    // Azure answers 404 for a missing blob (S3 would not): look first, without opening the envelope, so a
    // blob whose key was shredded (or whose envelope is broken) can still be deleted.
    let peek = cx.core.peek_object(&cx.tenant, container, blob).await.map_err(|e| cx.core_err(e))?;
    let etag = headers::azure_etag(&peek.etag, peek.envelope_tag.as_deref());
    conditions::check(cx.headers, Some(Current { etag: &etag, last_modified: peek.last_modified }), false)?;
    check_tag_condition(cx, container, blob).await?;
    cx.core.delete_object(&cx.tenant, container, blob, None).await.map_err(|e| cx.core_err(e))?;
    cx.core.discard_blocks(&cx.tenant, container, blob).await.map_err(|e| cx.core_err(e))?;
    let mut h = HeaderMap::new();
    set(&mut h, "x-ms-delete-type-permanent", "true");
    Ok(empty(StatusCode::ACCEPTED, h))
}

async fn change_properties(cx: &Ctx<'_>, change: PropertiesChange) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    check_tag_condition(cx, container, blob).await?;
    if conditions::any(cx.headers) {
        let info = cx.core.head_object(&cx.tenant, container, blob, None).await.map_err(|e| cx.core_err(e))?;
        conditions::check(cx.headers, Some(current(&info).as_current()), false)?;
    }
    let out = cx.core.update_properties(&cx.tenant, container, blob, change).await.map_err(|e| cx.core_err(e))?;
    Ok(empty(StatusCode::OK, written(&out, None)))
}

pub async fn set_metadata(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let change = PropertiesChange { metadata: Some(headers::metadata(cx.headers)?), ..PropertiesChange::default() };
    change_properties(cx, change).await
}

pub async fn set_properties(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    // Azure clears every property the request does not name.
    let md5 = headers::md5_header(cx.headers, "x-ms-blob-content-md5")?.map(|m| STANDARD.encode(m));
    let change = PropertiesChange {
        metadata: None,
        headers: Some(headers::content_headers(cx.headers, false)),
        content_md5: Some(md5),
    };
    change_properties(cx, change).await
}

pub async fn get_tags(cx: &Ctx<'_>) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let condition = tag_condition(cx)?;
    let tags = cx.core.object_tags(&cx.tenant, container, blob).await.map_err(|e| cx.core_err(e))?;
    tags_meet(condition.as_ref(), &tags)?;
    Ok(xml_response(StatusCode::OK, HeaderMap::new(), xml::tags_body(&tags)))
}

pub async fn set_tags(cx: &Ctx<'_>, request_body: s3s::Body) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let bytes = read_small_body(request_body, xml::MAX_TAGS_BYTES).await?;
    let tags = xml::parse_tags(&bytes)?;
    headers::check_tags(&tags)?;
    check_tag_condition(cx, container, blob).await?;
    cx.core.set_object_tags(&cx.tenant, container, blob, tags).await.map_err(|e| cx.core_err(e))?;
    Ok(empty(StatusCode::NO_CONTENT, HeaderMap::new()))
}

/// Where a Copy Blob reads from: only a blob of this same endpoint, of the caller's own tenant, that the
/// caller may read. Nothing is ever fetched from a URL.
fn copy_source(cx: &Ctx<'_>, accounts: &Accounts, own: &Account) -> Result<(String, String), AzureError> {
    let cannot = |why: &str| {
        AzureError::new(
            StatusCode::FORBIDDEN,
            "CannotVerifyCopySource",
            format!("Cannot verify the copy source: {why}"),
        )
    };
    let not_a_url = || {
        AzureError::bad_request(
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format: x-ms-copy-source must be an absolute URL.",
        )
    };
    let raw = headers::text(cx.headers, "x-ms-copy-source").ok_or_else(not_a_url)?;
    let url = url::Url::parse(raw).map_err(|_| not_a_url())?;
    let our_host = headers::text(cx.headers, "host").unwrap_or("");
    let their_host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    if !their_host.eq_ignore_ascii_case(our_host) {
        return Err(cannot("blobseal copies only between blobs of its own endpoint"));
    }
    let query = super::router::Query::parse(url.query())?;
    let target = super::router::target(Some(&their_host), url.path(), None)?;
    let (Some(container), Some(blob)) = (target.container.clone(), target.blob.clone()) else {
        return Err(cannot("the source names no blob"));
    };
    let account = accounts.get(&target.account).ok_or_else(|| cannot("unknown account"))?;
    if account.tenant != own.tenant {
        return Err(cannot("the source belongs to another account"));
    }
    let readable = if super::sas::present(&query) {
        let req = super::sas::SasRequest {
            account: &target.account,
            keys: &account.keys,
            now: time::OffsetDateTime::now_utc(),
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            https: true,
            container: Some(&container),
            blob: Some(&blob),
        };
        super::sas::verify(&query, &req)?.allows("r", Level::Object, Some(&container), Some(&blob))
    } else {
        match cx.caller {
            Caller::Key => true,
            Caller::Sas(grant) => grant.allows("r", Level::Object, Some(&container), Some(&blob)),
        }
    };
    if !readable {
        return Err(AzureError::new(
            StatusCode::FORBIDDEN,
            "CannotVerifyCopySource",
            "This request is not authorized to perform this operation using this permission.",
        ));
    }
    Ok((container, blob))
}

/// `x-ms-copy-source-tag-option`: whether the copy takes the source's tags (`COPY`) or only the request's
/// (`REPLACE`, Azure's default).
fn copy_source_tags(cx: &Ctx<'_>, request_has_tags: bool) -> Result<bool, AzureError> {
    match headers::text(cx.headers, "x-ms-copy-source-tag-option") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("replace") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("copy") && !request_has_tags => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("copy") => Err(AzureError::bad_request(
            "InvalidHeaderValue",
            "x-ms-tags cannot be given with x-ms-copy-source-tag-option: COPY.",
        )),
        Some(_) => {
            Err(AzureError::bad_request("InvalidHeaderValue", "x-ms-copy-source-tag-option must be REPLACE or COPY."))
        }
    }
}

fn source_condition_not_met() -> AzureError {
    AzureError::new(
        StatusCode::PRECONDITION_FAILED,
        "SourceConditionNotMet",
        "The source condition specified using HTTP conditional header(s) is not met.",
    )
}

/// The copy source's conditions (`x-ms-source-if-*`) under the names `conditions::check` reads.
fn source_conditions(cx: &Ctx<'_>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (from, to) in [
        ("x-ms-source-if-match", http::header::IF_MATCH),
        ("x-ms-source-if-none-match", http::header::IF_NONE_MATCH),
        ("x-ms-source-if-modified-since", http::header::IF_MODIFIED_SINCE),
        ("x-ms-source-if-unmodified-since", http::header::IF_UNMODIFIED_SINCE),
    ] {
        if let Some(v) = cx.headers.get(from) {
            h.insert(to, v.clone());
        }
    }
    h
}

pub async fn copy(cx: &Ctx<'_>, accounts: &Accounts, own: &Account) -> Result<Response, AzureError> {
    let (container, blob) = (cx.container()?, cx.blob()?);
    let (src_container, src_blob) = copy_source(cx, accounts, own)?;
    let metadata = headers::metadata(cx.headers)?;
    let tags = headers::tags(cx.headers)?;
    let days = retention_days(cx)?;
    let source_tags = copy_source_tags(cx, !tags.is_empty())?;
    let source_md5 = headers::md5_header(cx.headers, "x-ms-source-content-md5")?;
    let source_conditions = source_conditions(cx);
    let source_tag_condition = tag_condition_in(cx, "x-ms-source-if-tags")?;
    let create_only = check_write_conditions(cx, container, blob).await?;
    let needs_source = !metadata.is_empty()
        || !tags.is_empty()
        || days.is_some()
        || source_md5.is_some()
        || !source_conditions.is_empty();
    let source = if needs_source {
        Some(cx.core.head_object(&cx.tenant, &src_container, &src_blob, None).await.map_err(|e| cx.core_err(e))?)
    } else {
        None
    };
    if let Some(info) = source.as_ref().filter(|_| !source_conditions.is_empty()) {
        conditions::check(&source_conditions, Some(current(info).as_current()), false).map_err(|e| {
            if e.status == StatusCode::PRECONDITION_FAILED {
                source_condition_not_met()
            } else {
                e
            }
        })?;
    }
    if let Some(condition) = &source_tag_condition {
        let have = cx.core.object_tags(&cx.tenant, &src_container, &src_blob).await.map_err(|e| cx.core_err(e))?;
        if !condition.matches(&have) {
            return Err(source_condition_not_met());
        }
    }
    // `x-ms-source-content-md5` is checked against the source's plaintext MD5 (kept, authenticated, in its
    // metadata): the bytes are copied as they are stored, so they cannot change on the way.
    if let (Some(want), Some(info)) = (source_md5, &source) {
        let have = info.content_md5.as_deref().and_then(|m| STANDARD.decode(m).ok());
        match have {
            Some(have) if have.as_slice() == want.as_slice() => {}
            Some(_) => return Err(mismatch_error(Mismatch::Md5)),
            None => {
                return Err(AzureError::bad_request(
                    "Md5Mismatch",
                    "The source blob has no stored MD5 (it was written in parts without one), so \
                     x-ms-source-content-md5 cannot be verified.",
                ))
            }
        }
    }
    // New metadata, tags or retention for the copy; the content headers and MD5 stay the source's.
    let restated = !metadata.is_empty() || !tags.is_empty() || days.is_some();
    let replace = source.as_ref().filter(|_| restated).map(|info| PutRequest {
        metadata: if metadata.is_empty() { info.metadata.clone() } else { metadata },
        headers: info.headers.clone(),
        tags,
        retention_days: days,
        content_md5: info.content_md5.clone(),
        if_none_match_any: create_only,
    });
    let src = CopySource { bucket: &src_container, key: &src_blob, version_id: None };
    let mut id = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut id);
    let copy_id = uuid_text(&id);
    let now = headers::http_date(time::OffsetDateTime::now_utc());
    let record = format!("{copy_id}|{now}|{}", source_without_query(cx));
    let mode = CopyMode { record: Some(record), source_tags };
    let out = cx
        .core
        .copy_object_with_mode(&cx.tenant, src, container, blob, replace, create_only, mode)
        .await
        .map_err(|e| cx.write_err(e))?;
    let mut h = written(&out.put, None);
    set(&mut h, "x-ms-copy-id", &copy_id);
    set(&mut h, "x-ms-copy-status", "success");
    if let Some(m) = source_md5 {
        set(&mut h, "content-md5", &STANDARD.encode(m));
    }
    Ok(empty(StatusCode::ACCEPTED, h))
}

/// 16 bytes as a UUID's text, the shape Azure's copy ids have.
fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default().to_owned();
    format!("{}-{}-{}-{}-{}", part(0..8), part(8..12), part(12..16), part(16..20), part(20..32))
}

/// The copy source as recorded on the copy: its URL without the query (which may hold a SAS).
fn source_without_query(cx: &Ctx<'_>) -> String {
    let raw = headers::text(cx.headers, "x-ms-copy-source").unwrap_or("");
    raw.split('?').next().unwrap_or("").replace('|', "%7C")
}

/// The `x-ms-copy-*` headers of a blob made by Copy Blob.
pub fn copy_headers(info: &ObjectInfo, h: &mut HeaderMap) {
    let Some(record) = &info.copy else { return };
    let mut fields = record.splitn(3, '|');
    let (Some(id), Some(time), Some(source)) = (fields.next(), fields.next(), fields.next()) else { return };
    set(h, "x-ms-copy-id", id);
    set(h, "x-ms-copy-completion-time", time);
    set(h, "x-ms-copy-source", source);
    set(h, "x-ms-copy-status", "success");
    set(h, "x-ms-copy-progress", &format!("{}/{}", info.size, info.size));
}
