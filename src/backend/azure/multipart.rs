//! S3 multipart uploads on Azure: parts are uncommitted blocks of a staging blob.
//!
//! Blocks cannot be staged on the target blob itself: committing a block list, or any Put Blob to
//! the same name, discards every uncommitted block, so two uploads of one key (or a plain PUT
//! during an upload) would destroy each other's parts. Each upload therefore gets a staging blob
//! `<container>/<upload id>` in one reserved container that no bucket name maps to. It is
//! created empty by CreateMultipartUpload and holds, as metadata, the object's metadata, content
//! headers and tags and the key (hex). A part is staged as blocks with ids
//! `p<part:05><nonce:32 hex><block:02>`; the nonce starts with the time, so the latest upload of a
//! part number wins. Once its blocks are staged, a part gets a marker blob
//! `<container>/<upload id>/p<part:05>-<nonce>` holding its MD5 (the part's S3 ETag, which Azure
//! keeps for no block): a part without its marker was cut off and does not count. Completion commits the chosen blocks on the
//! staging blob, copies it to the target (server-side, under the completion's condition), then
//! deletes the staging blob. The target carries the upload id (`bs_upload`), so a completion
//! retried after a crash between copy and delete finishes instead of failing. Azure removes
//! uncommitted blocks after seven days: an upload left that long loses its parts (S3 keeps them).

use std::collections::BTreeMap;

use azure_core::http::Method;
use azure_storage_blob::models::BlockList;
use time::OffsetDateTime;

use super::blocks::{block_list_request, md5_tap, stage_blocks, timed_nonce};
use super::client::{Answer, AzureClient};
use super::convert::{etag_of, metadata_headers, set_content_headers, tags_header, ETAG_META, EXPIRES_META};
use super::listing::list_blobs;
use super::names::{blob_name, metadata_name, metadata_value};
use crate::backend::{
    BackendError, ByteStream, CompletedPart, ListPartsOptions, ListUploadsOptions, PartInfo, PartsPage, PutOptions,
    Result, UploadInfo, UploadsPage, MAX_PART_NUMBER, MIN_PART_SIZE,
};

/// The reserved container: `-2` is no escape `names::container_name` writes, so no bucket maps here.
pub(super) const UPLOADS_CONTAINER: &str = "x0-blobseal-2uploads";
/// Staging metadata: the key (hex), the tags (`x-ms-tags` form); on the target, the upload id.
const KEY_META: &str = "bs_key";
const TAGS_META: &str = "bs_tags";
const UPLOAD_META: &str = "bs_upload";
const MD5_META: &str = "bs_md5";

fn staging_name(container: &str, upload_id: &str) -> String {
    format!("{container}/{upload_id}")
}

fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn new_upload_id() -> Result<String> {
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| BackendError::Unavailable("random generator failed".into()))?;
    Ok(hex::encode(raw))
}

/// Creates the reserved container if it is missing.
async fn ensure_uploads_container(client: &AzureClient) -> Result<()> {
    let mut req = client.request(Method::Put, client.url(Some(UPLOADS_CONTAINER), None, &[("restype", "container")])?);
    req.set_body(bytes::Bytes::new());
    match client.send(&mut req, BackendError::NoSuchBucket).await {
        Ok(_) | Err(BackendError::BucketAlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) async fn create(client: &AzureClient, container: &str, key: &str, opts: &PutOptions) -> Result<String> {
    blob_name(key)?;
    let mut head = client.request(Method::Head, client.url(Some(container), None, &[("restype", "container")])?);
    client.send(&mut head, BackendError::NoSuchBucket).await?;
    let upload_id = new_upload_id()?;
    let url = client.url(Some(UPLOADS_CONTAINER), Some(&staging_name(container, &upload_id)), &[])?;
    for attempt in 0..2 {
        let mut req = client.request(Method::Put, url.clone());
        req.insert_header("x-ms-blob-type", "BlockBlob");
        req.insert_header("if-none-match", "*");
        for (name, value) in &opts.metadata {
            req.insert_header(format!("x-ms-meta-{}", metadata_name(name)), metadata_value(value));
        }
        if let Some(expires) = &opts.headers.expires {
            req.insert_header(format!("x-ms-meta-{EXPIRES_META}"), metadata_value(expires));
        }
        req.insert_header(format!("x-ms-meta-{KEY_META}"), hex::encode(key));
        if !opts.tags.is_empty() {
            req.insert_header(format!("x-ms-meta-{TAGS_META}"), metadata_value(&tags_header(&opts.tags)));
        }
        set_content_headers(&mut req, &opts.headers);
        req.set_body(bytes::Bytes::new());
        match client.send(&mut req, BackendError::NoSuchBucket).await {
            Ok(_) => return Ok(upload_id),
            Err(BackendError::NoSuchBucket) if attempt == 0 => ensure_uploads_container(client).await?,
            Err(e) => return Err(e),
        }
    }
    Err(BackendError::Unavailable("the uploads container could not be created".into()))
}

/// The staging blob's properties, if `upload_id` is an upload of `container/key`.
pub(super) async fn check_upload(client: &AzureClient, container: &str, key: &str, upload_id: &str) -> Result<Answer> {
    if !valid_upload_id(upload_id) {
        return Err(BackendError::NoSuchUpload);
    }
    let url = client.url(Some(UPLOADS_CONTAINER), Some(&staging_name(container, upload_id)), &[])?;
    let mut req = client.request(Method::Head, url);
    let answer = match client.send(&mut req, BackendError::NoSuchUpload).await {
        Err(BackendError::NoSuchBucket) => return Err(BackendError::NoSuchUpload),
        other => other?,
    };
    let stored = metadata_headers(&answer.headers).find(|(n, _)| n.eq_ignore_ascii_case(KEY_META)).map(|(_, v)| v);
    if stored.as_deref() != Some(hex::encode(key).as_str()) {
        return Err(BackendError::NoSuchUpload);
    }
    Ok(answer)
}

pub(super) async fn upload_part(
    client: &AzureClient,
    container: &str,
    key: &str,
    upload_id: &str,
    part_number: u32,
    body: ByteStream,
    len: u64,
) -> Result<String> {
    if !(1..=MAX_PART_NUMBER).contains(&part_number) {
        return Err(BackendError::InvalidRequest(format!("part number {part_number} is not in 1..=10000")));
    }
    check_upload(client, container, key, upload_id).await?;
    let nonce = timed_nonce();
    let staging = staging_name(container, upload_id);
    let (body, md5) = md5_tap(body);
    stage_blocks(client, UPLOADS_CONTAINER, &staging, body, len, |i| format!("p{part_number:05}{nonce}{i:02}")).await?;
    let etag = hex::encode(md5.digest()?);
    let marker = format!("{staging}/p{part_number:05}-{nonce}");
    let mut req = client.request(Method::Put, client.url(Some(UPLOADS_CONTAINER), Some(&marker), &[])?);
    req.insert_header("x-ms-blob-type", "BlockBlob");
    req.insert_header(format!("x-ms-meta-{MD5_META}"), etag.clone());
    req.set_body(bytes::Bytes::new());
    client.send(&mut req, BackendError::NoSuchUpload).await?;
    Ok(etag)
}

/// The MD5 of each finished part upload, by `(part, nonce)`.
async fn part_markers(
    client: &AzureClient,
    container: &str,
    upload_id: &str,
) -> Result<BTreeMap<(u32, String), String>> {
    let prefix = format!("{}/p", staging_name(container, upload_id));
    let mut markers = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = list_blobs(client, UPLOADS_CONTAINER, &prefix, marker.as_deref(), Some("metadata"), 5000).await?;
        for item in &page.blob_items {
            let Some(rest) = item.name.as_deref().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            let Some((part, nonce)) = rest.split_once('-') else { continue };
            let Ok(part) = part.parse::<u32>() else { continue };
            let md5 = item
                .metadata
                .as_ref()
                .and_then(|m| m.values.as_ref())
                .and_then(|v| v.iter().find(|(n, _)| n.eq_ignore_ascii_case(MD5_META)).map(|(_, m)| m.clone()));
            if let Some(md5) = md5 {
                markers.insert((part, nonce.to_owned()), md5);
            }
        }
        match page.next_marker.filter(|m| !m.is_empty()) {
            Some(next) => marker = Some(next),
            None => return Ok(markers),
        }
    }
}

/// One part as its blocks show it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StagedPart {
    nonce: String,
    /// The part's MD5 (hex): its ETag.
    md5: String,
    size: u64,
    /// Raw block ids, in order.
    blocks: Vec<String>,
}

impl StagedPart {
    fn last_modified(&self) -> OffsetDateTime {
        let nanos = u64::from_str_radix(self.nonce.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// `(part, nonce, block index)` of a raw part block id.
fn parse_block_id(raw: &str) -> Option<(u32, &str, u32)> {
    if raw.len() != 40 || !raw.starts_with('p') {
        return None;
    }
    let part = raw.get(1..6)?.parse().ok()?;
    let nonce = raw.get(6..38)?;
    let index = raw.get(38..40)?.parse().ok()?;
    Some((part, nonce, index))
}

/// The latest finished upload of each part number among `blocks` (name bytes, size); finished
/// means all its blocks are there and its marker (`markers`, with the MD5) too.
fn latest_parts(
    blocks: &[azure_storage_blob::models::Block],
    markers: &BTreeMap<(u32, String), String>,
) -> BTreeMap<u32, StagedPart> {
    // (part, nonce) → its blocks as (index, raw id, size).
    type Pieces = Vec<(u32, String, u64)>;
    let mut all: BTreeMap<(u32, String), Pieces> = BTreeMap::new();
    for block in blocks {
        let Some(raw) = block.name.as_deref().and_then(|n| std::str::from_utf8(n).ok()) else { continue };
        let Some((part, nonce, index)) = parse_block_id(raw) else { continue };
        let size = block.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        all.entry((part, nonce.to_owned())).or_default().push((index, raw.to_owned(), size));
    }
    let mut latest = BTreeMap::new();
    // Ascending (part, nonce): a later nonce of the same part overwrites the earlier.
    for ((part, nonce), mut pieces) in all {
        pieces.sort();
        let complete = pieces.iter().enumerate().all(|(i, (index, _, _))| usize::try_from(*index).ok() == Some(i));
        let Some(md5) = markers.get(&(part, nonce.clone())).filter(|_| complete) else { continue };
        let size = pieces.iter().map(|(_, _, s)| s).sum();
        let blocks = pieces.into_iter().map(|(_, raw, _)| raw).collect();
        latest.insert(part, StagedPart { nonce, md5: md5.clone(), size, blocks });
    }
    latest
}

async fn block_list(client: &AzureClient, container: &str, upload_id: &str) -> Result<BlockList> {
    let url = client.url(
        Some(UPLOADS_CONTAINER),
        Some(&staging_name(container, upload_id)),
        &[("comp", "blocklist"), ("blocklisttype", "all")],
    )?;
    let mut req = client.request(Method::Get, url);
    let body = client.send(&mut req, BackendError::NoSuchUpload).await?.bytes().await?;
    azure_core::xml::from_xml(body)
        .map_err(|e| BackendError::Other { backend: "azure", message: format!("unreadable block list: {e}") })
}

pub(super) async fn list_parts(
    client: &AzureClient,
    container: &str,
    key: &str,
    upload_id: &str,
    opts: &ListPartsOptions,
) -> Result<PartsPage> {
    check_upload(client, container, key, upload_id).await?;
    let list = block_list(client, container, upload_id).await?;
    let markers = part_markers(client, container, upload_id).await?;
    let parts = latest_parts(list.uncommitted_blocks.as_deref().unwrap_or_default(), &markers);
    let after = opts.part_number_marker.unwrap_or(0);
    let mut page = PartsPage::default();
    for (number, part) in parts.range(after.saturating_add(1)..) {
        if page.parts.len() == opts.max_parts {
            page.is_truncated = true;
            page.next_part_number_marker = page.parts.last().map(|p| p.part_number);
            break;
        }
        page.parts.push(PartInfo {
            part_number: *number,
            size: part.size,
            etag: part.md5.clone(),
            last_modified: part.last_modified(),
        });
    }
    Ok(page)
}

/// The blocks a completion commits, checked as S3 checks a CompleteMultipartUpload, and the
/// object's S3 ETag: the MD5 of the parts' MD5s, a dash, the number of parts.
fn chosen_blocks(staged: &BTreeMap<u32, StagedPart>, parts: &[CompletedPart]) -> Result<(Vec<String>, String)> {
    use md5::Digest as _;
    if parts.is_empty() {
        return Err(BackendError::InvalidPart("a completion names at least one part".into()));
    }
    if parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(BackendError::InvalidPartOrder);
    }
    let mut ids = Vec::new();
    let mut md5s = md5::Md5::new();
    for (i, wanted) in parts.iter().enumerate() {
        let part =
            staged.get(&wanted.part_number).filter(|p| p.md5 == wanted.etag.trim_matches('"')).ok_or_else(|| {
                BackendError::InvalidPart(format!("part {} is not uploaded with that ETag", wanted.part_number))
            })?;
        if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
            return Err(BackendError::EntityTooSmall);
        }
        ids.extend(part.blocks.iter().cloned());
        md5s.update(hex::decode(&part.md5).map_err(|_| BackendError::InvalidPart("unreadable part MD5".into()))?);
    }
    let digest: [u8; 16] = md5s.finalize().into();
    Ok((ids, format!("{}-{}", hex::encode(digest), parts.len())))
}

/// Commits the chosen parts and copies the staging blob to `container/key`. Returns the copy's
/// answer and the object's ETag (the caller waits for a pending copy and then discards the
/// staging blob).
pub(super) async fn complete(
    client: &AzureClient,
    container: &str,
    key: &str,
    upload_id: &str,
    parts: &[CompletedPart],
    if_none_match_any: bool,
) -> Result<(Answer, String)> {
    let staging = check_upload(client, container, key, upload_id).await?;
    let blob = blob_name(key)?;
    // Retried after a crash between the copy and the clean-up: the object is there already.
    let mut target = client.request(Method::Head, client.url(Some(container), Some(&blob), &[])?);
    if let Ok(existing) = client.send(&mut target, BackendError::NoSuchKey).await {
        if metadata_headers(&existing.headers).any(|(n, v)| n.eq_ignore_ascii_case(UPLOAD_META) && v == upload_id) {
            let etag = etag_of(&existing.headers);
            return Ok((existing, etag));
        }
    }
    let list = block_list(client, container, upload_id).await?;
    let committed = list.committed_blocks.as_deref().unwrap_or_default();
    let markers = part_markers(client, container, upload_id).await?;
    let staged = if committed.is_empty() {
        latest_parts(list.uncommitted_blocks.as_deref().unwrap_or_default(), &markers)
    } else {
        // An earlier completion committed and then stopped: its parts are the committed blocks.
        latest_parts(committed, &markers)
    };
    let (ids, etag) = chosen_blocks(&staged, parts)?;
    let meta: Vec<(String, String)> = metadata_headers(&staging.headers).collect();
    if committed.is_empty() {
        let mut req = block_list_request(client, UPLOADS_CONTAINER, &staging_name(container, upload_id), &ids)?;
        // Put Block List replaces metadata and properties: carry the staging blob's over.
        for (name, value) in &meta {
            req.insert_header(format!("x-ms-meta-{name}"), value.clone());
        }
        for (from, to) in [
            ("content-type", "x-ms-blob-content-type"),
            ("content-encoding", "x-ms-blob-content-encoding"),
            ("content-disposition", "x-ms-blob-content-disposition"),
            ("content-language", "x-ms-blob-content-language"),
            ("cache-control", "x-ms-blob-cache-control"),
        ] {
            if let Some(value) = staging.header(from) {
                req.insert_header(to, value.to_owned());
            }
        }
        client.send(&mut req, BackendError::NoSuchUpload).await?;
    }
    let source = client.url(Some(UPLOADS_CONTAINER), Some(&staging_name(container, upload_id)), &[])?;
    let mut req = client.request(Method::Put, client.url(Some(container), Some(&blob), &[])?);
    req.insert_header("x-ms-copy-source", source.to_string());
    if if_none_match_any {
        req.insert_header("if-none-match", "*");
    }
    for (name, value) in &meta {
        if name.eq_ignore_ascii_case(KEY_META) {
            continue;
        }
        if name.eq_ignore_ascii_case(TAGS_META) {
            if let Some(tags) = super::names::user_metadata_value(value).filter(|t| !t.is_empty()) {
                req.insert_header("x-ms-tags", tags);
            }
            continue;
        }
        req.insert_header(format!("x-ms-meta-{name}"), value.clone());
    }
    req.insert_header(format!("x-ms-meta-{UPLOAD_META}"), upload_id.to_owned());
    req.insert_header(format!("x-ms-meta-{ETAG_META}"), etag.clone());
    req.set_body(bytes::Bytes::new());
    let answer = client.send(&mut req, BackendError::NoSuchUpload).await?;
    Ok((answer, etag))
}

/// Deletes a staging blob (and with it every uncommitted part), then its part markers. Gone
/// already is fine.
pub(super) async fn discard(client: &AzureClient, container: &str, upload_id: &str) -> Result<()> {
    let staging = staging_name(container, upload_id);
    delete_blob(client, &staging).await?;
    for (part, nonce) in part_markers(client, container, upload_id).await?.into_keys() {
        delete_blob(client, &format!("{staging}/p{part:05}-{nonce}")).await?;
    }
    Ok(())
}

async fn delete_blob(client: &AzureClient, name: &str) -> Result<()> {
    let mut req = client.request(Method::Delete, client.url(Some(UPLOADS_CONTAINER), Some(name), &[])?);
    match client.send(&mut req, BackendError::NoSuchUpload).await {
        Ok(_) | Err(BackendError::NoSuchUpload | BackendError::NoSuchBucket) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every upload of `container`, sorted by key, then initiation, then id.
async fn all_uploads(client: &AzureClient, container: &str) -> Result<Vec<UploadInfo>> {
    let prefix = format!("{container}/");
    let mut uploads = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = match list_blobs(client, UPLOADS_CONTAINER, &prefix, marker.as_deref(), Some("metadata"), 5000).await
        {
            Err(BackendError::NoSuchBucket) => return Ok(uploads),
            other => other?,
        };
        for item in &page.blob_items {
            // Staging blobs only, not their part markers (`<upload id>/p...`).
            let Some(upload_id) =
                item.name.as_deref().and_then(|n| n.strip_prefix(&prefix)).filter(|id| valid_upload_id(id))
            else {
                continue;
            };
            let values = item.metadata.as_ref().and_then(|m| m.values.as_ref());
            let key = values
                .and_then(|v| v.iter().find(|(n, _)| n.eq_ignore_ascii_case(KEY_META)))
                .and_then(|(_, hexed)| hex::decode(hexed).ok())
                .and_then(|raw| String::from_utf8(raw).ok());
            let Some(key) = key else { continue };
            let props = item.properties.as_ref();
            let initiated =
                props.and_then(|p| p.creation_time.or(p.last_modified)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            uploads.push(UploadInfo { key, upload_id: upload_id.to_owned(), initiated });
        }
        match page.next_marker.filter(|m| !m.is_empty()) {
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    uploads.sort_by(|a, b| (&a.key, a.initiated, &a.upload_id).cmp(&(&b.key, b.initiated, &b.upload_id)));
    Ok(uploads)
}

pub(super) async fn list_uploads(
    client: &AzureClient,
    container: &str,
    opts: &ListUploadsOptions,
) -> Result<UploadsPage> {
    let uploads = all_uploads(client, container).await?;
    Ok(page_of_uploads(uploads, opts))
}

fn page_of_uploads(uploads: Vec<UploadInfo>, opts: &ListUploadsOptions) -> UploadsPage {
    let mut page = UploadsPage::default();
    // With an id marker, uploads of the marker key resume after that id; without, after the key.
    let mut skipping_id = opts.upload_id_marker.is_some();
    for upload in uploads {
        if !upload.key.starts_with(opts.prefix.as_str()) {
            continue;
        }
        if let Some(km) = &opts.key_marker {
            if upload.key < *km {
                continue;
            }
            if upload.key == *km {
                match &opts.upload_id_marker {
                    None => continue,
                    Some(id) if skipping_id => {
                        skipping_id = upload.upload_id != *id;
                        continue;
                    }
                    Some(_) => {}
                }
            }
        }
        if page.uploads.len() == opts.max_uploads {
            page.is_truncated = true;
            page.next_key_marker = page.uploads.last().map(|u| u.key.clone());
            page.next_upload_id_marker = page.uploads.last().map(|u| u.upload_id.clone());
            break;
        }
        page.uploads.push(upload);
    }
    page
}

/// Discards every upload of `container` (its bucket is being deleted).
pub(super) async fn abort_all(client: &AzureClient, container: &str) -> Result<()> {
    for upload in all_uploads(client, container).await? {
        discard(client, container, &upload.upload_id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use azure_storage_blob::models::Block;

    fn block(raw: &str, size: i64) -> Block {
        let mut b = Block::default();
        b.name = Some(raw.as_bytes().to_vec());
        b.size = Some(size);
        b
    }

    const OLD: &str = "0000000000000001aaaaaaaaaaaaaaaa";
    const NEW: &str = "0000000000000002bbbbbbbbbbbbbbbb";

    #[test]
    fn the_latest_upload_of_a_part_wins_and_pieces_stay_in_order() {
        let blocks = [
            block(&format!("p00001{NEW}01"), 3),
            block(&format!("p00001{OLD}00"), 100),
            block(&format!("p00001{NEW}00"), 7),
            block(&format!("p00002{OLD}00"), 5),
            block(&format!("p00003{OLD}01"), 5), // piece 0 missing: not a whole part
            block("s-not-a-part", 1),
        ];
        let markers =
            [(1, OLD), (1, NEW), (2, OLD), (3, OLD)].map(|(p, n)| ((p, n.to_owned()), format!("{p}{n}"))).into();
        let parts = latest_parts(&blocks, &markers);
        assert_eq!(parts.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(parts[&1].nonce, NEW);
        assert_eq!(parts[&1].size, 10);
        assert_eq!(parts[&1].blocks, [format!("p00001{NEW}00"), format!("p00001{NEW}01")]);
        assert_eq!(parts[&1].md5, format!("1{NEW}"));
        assert_eq!(parts[&1].last_modified(), OffsetDateTime::from_unix_timestamp_nanos(2).unwrap());
        let without_marker = [((1, OLD.to_owned()), "m".to_owned())].into();
        assert_eq!(latest_parts(&blocks, &without_marker)[&1].nonce, OLD, "a part without its marker does not count");
    }

    #[test]
    fn completions_are_checked_like_s3() {
        let big = MIN_PART_SIZE as i64;
        let blocks = [
            block(&format!("p00001{OLD}00"), big),
            block(&format!("p00002{NEW}00"), 10),
            block(&format!("p00003{OLD}00"), 1),
        ];
        let (m1, m2, m3) = ("11".repeat(16), "22".repeat(16), "33".repeat(16));
        let markers =
            [((1, OLD.to_owned()), m1.clone()), ((2, NEW.to_owned()), m2.clone()), ((3, OLD.to_owned()), m3.clone())]
                .into();
        let staged = latest_parts(&blocks, &markers);
        let part = |n: u32, etag: &str| CompletedPart { part_number: n, etag: etag.to_owned() };
        let (ids, etag) = chosen_blocks(&staged, &[part(1, &m1), part(2, &format!("\"{m2}\""))]).unwrap();
        assert_eq!(ids, [format!("p00001{OLD}00"), format!("p00002{NEW}00")]);
        use md5::Digest as _;
        let want: [u8; 16] = md5::Md5::digest([[0x11u8; 16], [0x22u8; 16]].concat()).into();
        assert_eq!(etag, format!("{}-2", hex::encode(want)));
        assert!(matches!(chosen_blocks(&staged, &[part(2, &m2), part(1, &m1)]), Err(BackendError::InvalidPartOrder)));
        assert!(matches!(chosen_blocks(&staged, &[part(1, &m2)]), Err(BackendError::InvalidPart(_))));
        assert!(matches!(chosen_blocks(&staged, &[part(4, &m1)]), Err(BackendError::InvalidPart(_))));
        assert!(matches!(chosen_blocks(&staged, &[part(2, &m2), part(3, &m3)]), Err(BackendError::EntityTooSmall)));
        assert!(matches!(chosen_blocks(&staged, &[]), Err(BackendError::InvalidPart(_))));
    }

    #[test]
    fn upload_ids_and_block_ids_are_strict() {
        assert!(valid_upload_id(&"a".repeat(32)));
        assert!(!valid_upload_id(&"A".repeat(32)));
        assert!(!valid_upload_id("../x"));
        assert_eq!(parse_block_id(&format!("p00042{OLD}03")), Some((42, OLD, 3)));
        assert_eq!(parse_block_id(&format!("p0004x{OLD}03")), None);
        assert_eq!(format!("p{:05}{OLD}{:02}", 10000, 1).len(), 40);
        const { assert!(super::super::blocks::MAX_BLOCK * 2 >= crate::backend::MAX_PART_SIZE) };
    }

    #[test]
    fn upload_pages_follow_both_markers() {
        let at = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let up = |k: &str, id: &str, t| UploadInfo { key: k.into(), upload_id: id.into(), initiated: at(t) };
        let all = vec![up("a", "1", 1), up("a", "2", 2), up("b", "3", 1), up("c", "4", 1)];
        let opts = |km: Option<&str>, im: Option<&str>, max| ListUploadsOptions {
            prefix: String::new(),
            key_marker: km.map(Into::into),
            upload_id_marker: im.map(Into::into),
            max_uploads: max,
        };
        let first = page_of_uploads(all.clone(), &opts(None, None, 2));
        assert_eq!(first.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert!(first.is_truncated);
        let next = page_of_uploads(all.clone(), &opts(Some("a"), Some("1"), 10));
        assert_eq!(next.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["2", "3", "4"]);
        let after_key = page_of_uploads(all, &opts(Some("a"), None, 10));
        assert_eq!(after_key.uploads.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["3", "4"]);
    }
}
