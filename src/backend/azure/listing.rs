//! S3 listings over Azure's flat List Blobs.
//!
//! Azure lists blob names in order and pages with an opaque `NextMarker`. Encoded names keep S3's
//! order (see `names.rs`), so an S3 page is cut from Azure pages as they come: keys are decoded,
//! common prefixes folded here (Azure's own folding would work on encoded names, which differ for
//! a few delimiters), and the continuation token carries the Azure marker of the page the next
//! key is on plus the last key returned, so a page costs the Azure pages it spans, not a rescan.
//! `start-after` has no Azure counterpart: it is a scan from the prefix (documented).

use azure_core::http::Method;
use azure_storage_blob::models::{BlobItem, ListBlobsResponse};
use time::OffsetDateTime;

use super::client::AzureClient;
use super::convert::{reported_etag, ETAG_META};
use super::names::{key_of_blob, list_prefix};
use crate::backend::listing::{decode_token, encode_token};
use crate::backend::{
    BackendError, ListOptions, ListPage, ListVersionsOptions, ObjectMeta, Result, VersionEntry, VersionPage,
};

/// Blobs asked for per Azure page (Azure's maximum).
const AZURE_PAGE: usize = 5000;

/// One Azure List Blobs page of `container` under `prefix`.
pub(super) async fn list_blobs(
    client: &AzureClient,
    container: &str,
    prefix: &str,
    marker: Option<&str>,
    include: Option<&str>,
    max: usize,
) -> Result<ListBlobsResponse> {
    let max = max.clamp(1, AZURE_PAGE).to_string();
    let mut query = vec![("restype", "container"), ("comp", "list"), ("maxresults", max.as_str())];
    if !prefix.is_empty() {
        query.push(("prefix", prefix));
    }
    if let Some(marker) = marker.filter(|m| !m.is_empty()) {
        query.push(("marker", marker));
    }
    if let Some(include) = include {
        query.push(("include", include));
    }
    let mut req = client.request(Method::Get, client.url(Some(container), None, &query)?);
    let body = client.send(&mut req, BackendError::NoSuchBucket).await?.bytes().await?;
    azure_core::xml::from_xml(body)
        .map_err(|e| BackendError::Other { backend: "azure", message: format!("unreadable blob listing: {e}") })
}

/// The S3 view of a listed blob; `None` for names no key encodes to.
pub(super) fn object_meta(item: &BlobItem) -> Option<ObjectMeta> {
    let key = key_of_blob(item.name.as_deref()?)?;
    let props = item.properties.as_ref()?;
    Some(ObjectMeta {
        key,
        size: props.content_length.unwrap_or(0),
        etag: reported_etag(
            item.metadata
                .as_ref()
                .and_then(|m| m.values.as_ref())
                .and_then(|v| v.iter().find(|(n, _)| n.eq_ignore_ascii_case(ETAG_META)).map(|(_, e)| e.as_str())),
            props.content_md5.as_deref(),
            props.etag.as_ref().map(|e| e.to_string()).as_deref(),
        ),
        last_modified: props.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        version_id: item.version_id.clone(),
    })
}

/// Where a listing resumes: the Azure marker of the page to read and the last S3 entry returned.
struct Resume {
    marker: Option<String>,
    after: Option<String>,
}

fn encode_resume(marker: Option<&str>, last: &str) -> String {
    encode_token(&format!("{}\n{last}", marker.unwrap_or("")))
}

fn decode_resume(token: &str) -> Result<Resume> {
    let text = decode_token(token)?;
    let (marker, last) =
        text.split_once('\n').ok_or_else(|| BackendError::InvalidRequest("invalid continuation token".into()))?;
    Ok(Resume { marker: (!marker.is_empty()).then(|| marker.to_owned()), after: Some(last.to_owned()) })
}

/// One S3 listing page of `container`.
pub(super) async fn list_page(client: &AzureClient, container: &str, opts: &ListOptions) -> Result<ListPage> {
    let mut resume = match &opts.continuation {
        Some(token) => decode_resume(token)?,
        None => Resume { marker: None, after: None },
    };
    let mut page = ListPage::default();
    if opts.max_keys == 0 {
        return Ok(page);
    }
    let azure_prefix = list_prefix(&opts.prefix)?;
    let delimiter = opts.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut last_prefix: Option<String> = None;
    loop {
        let listed =
            list_blobs(client, container, &azure_prefix, resume.marker.as_deref(), Some("metadata"), AZURE_PAGE)
                .await?;
        for item in &listed.blob_items {
            let Some(meta) = object_meta(item) else { continue };
            let Some(rest) = meta.key.strip_prefix(opts.prefix.as_str()) else { continue };
            // The same rules as `listing::paginate`: start-after bounds keys; our resume point
            // bounds keys and the common prefixes already returned.
            let key = meta.key.as_str();
            if opts.start_after.as_deref().is_some_and(|s| key <= s)
                || resume.after.as_deref().is_some_and(|r| key <= r)
            {
                continue;
            }
            let folded =
                delimiter.and_then(|d| rest.find(d).map(|i| meta.key[..opts.prefix.len() + i + d.len()].to_owned()));
            if let Some(common) = &folded {
                if last_prefix.as_ref() == Some(common) || resume.after.as_deref().is_some_and(|r| common.as_str() <= r)
                {
                    continue;
                }
            }
            if page.objects.len() + page.common_prefixes.len() == opts.max_keys {
                page.is_truncated = true;
                let last = last_prefix_or_key(&page);
                page.next_token = Some(encode_resume(resume.marker.as_deref(), &last));
                return Ok(page);
            }
            match folded {
                Some(common) => {
                    last_prefix = Some(common.clone());
                    page.common_prefixes.push(common);
                }
                None => page.objects.push(meta),
            }
        }
        match listed.next_marker.filter(|m| !m.is_empty()) {
            Some(next) => resume.marker = Some(next),
            None => return Ok(page),
        }
    }
}

/// One S3 version listing page of `container`: every version of each key, newest first (Azure
/// lists a blob's versions oldest first; they arrive together and are turned round here). A key's
/// versions and the markers are resolved by scanning from the prefix (Azure has no key marker).
pub(super) async fn list_versions_page(
    client: &AzureClient,
    container: &str,
    opts: &ListVersionsOptions,
) -> Result<VersionPage> {
    let mut page = VersionPage::default();
    if opts.max_keys == 0 {
        return Ok(page);
    }
    let azure_prefix = list_prefix(&opts.prefix)?;
    let delimiter = opts.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut marker: Option<String> = None;
    let mut group: Vec<VersionEntry> = Vec::new();
    let mut skipping_versions = opts.version_id_marker.is_some();
    let mut full = false;
    // Takes one key's versions into the page; `false` once the page is full.
    let mut take = |group: &mut Vec<VersionEntry>, page: &mut VersionPage| -> bool {
        group.sort_by(|a, b| b.meta.version_id.cmp(&a.meta.version_id));
        for entry in group.drain(..) {
            let key = entry.meta.key.clone();
            if let Some(km) = &opts.key_marker {
                if key < *km {
                    continue;
                }
                if key == *km {
                    match &opts.version_id_marker {
                        None => continue,
                        Some(vm) if skipping_versions => {
                            skipping_versions = entry.meta.version_id.as_deref() != Some(vm.as_str());
                            continue;
                        }
                        Some(_) => {}
                    }
                }
            }
            let rest = key.get(opts.prefix.len()..).unwrap_or_default();
            if let Some(d) = delimiter {
                if let Some(i) = rest.find(d) {
                    let common = key[..opts.prefix.len() + i + d.len()].to_owned();
                    let behind_marker = opts.key_marker.as_ref().is_some_and(|km| common.as_str() <= km.as_str());
                    if page.common_prefixes.last() != Some(&common) && !behind_marker {
                        if page.versions.len() + page.common_prefixes.len() == opts.max_keys {
                            page.is_truncated = true;
                            return false;
                        }
                        page.common_prefixes.push(common.clone());
                        page.next_key_marker = Some(common);
                        page.next_version_id_marker = None;
                    }
                    continue;
                }
            }
            if page.versions.len() + page.common_prefixes.len() == opts.max_keys {
                page.is_truncated = true;
                return false;
            }
            page.next_key_marker = Some(key);
            page.next_version_id_marker = entry.meta.version_id.clone();
            page.versions.push(entry);
        }
        true
    };
    'pages: loop {
        let listed =
            list_blobs(client, container, &azure_prefix, marker.as_deref(), Some("metadata,versions"), AZURE_PAGE)
                .await?;
        for item in &listed.blob_items {
            let Some(meta) = object_meta(item) else { continue };
            if !meta.key.starts_with(opts.prefix.as_str()) {
                continue;
            }
            if group.first().is_some_and(|g| g.meta.key != meta.key) && !take(&mut group, &mut page) {
                full = true;
                break 'pages;
            }
            // Without versions every blob is current; with them Azure says which one is.
            let is_latest = item.is_current_version.unwrap_or(item.version_id.is_none());
            group.push(VersionEntry { meta, is_latest, is_delete_marker: false });
        }
        match listed.next_marker.filter(|m| !m.is_empty()) {
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    if !full && !take(&mut group, &mut page) {
        full = true;
    }
    if !full {
        page.is_truncated = false;
        page.next_key_marker = None;
        page.next_version_id_marker = None;
    }
    Ok(page)
}

/// The greatest entry of a page: its last key or last common prefix.
fn last_prefix_or_key(page: &ListPage) -> String {
    let key = page.objects.last().map(|o| o.key.as_str());
    let prefix = page.common_prefixes.last().map(String::as_str);
    key.max(prefix).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resume_tokens_round_trip_and_refuse_garbage() {
        let token = encode_resume(Some("2!152!MDAwMDA"), "photos/a\nb");
        let r = decode_resume(&token).unwrap();
        assert_eq!(r.marker.as_deref(), Some("2!152!MDAwMDA"));
        assert_eq!(r.after.as_deref(), Some("photos/a\nb"));
        let first = decode_resume(&encode_resume(None, "k")).unwrap();
        assert!(first.marker.is_none());
        assert!(decode_resume("!!").is_err());
        assert!(decode_resume(&encode_token("no newline")).is_err());
    }
}
