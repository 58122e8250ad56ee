//! [`AzureBackend`]: objects in Azure Blob Storage, through `azure_core`'s pipeline and the
//! `azure_storage_blob` models.
//!
//! `azure_storage_blob` 1.x's clients do not fit a streaming proxy: `upload` and `download`
//! partition bodies in memory and in parallel, blob names are percent-encoded segment by segment
//! (`/` becomes `%2F`), listings are flat without prefixes, and there is no SharedKey. So each
//! operation is one REST request built here and sent through the `azure_core` pipeline
//! (`client.rs`, signed by `shared_key.rs`, carried by hyper in `transport.rs`); answers are read
//! with the crate's XML models. Names, containers and metadata are encoded reversibly (`names.rs`),
//! multipart uploads are staged blocks (`multipart.rs`), listings are cut in `listing.rs`.
//!
//! Each bucket is one container; the data plane has no region (config declares it). Versions
//! and immutability are account settings: versions are listed and addressed when the account
//! keeps them, and lock state comes from the version's immutability policy and legal hold.

mod blocks;
mod client;
mod convert;
mod listing;
mod multipart;
mod names;
mod settings;
mod shared_key;
mod transport;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::Method;
use futures::StreamExt as _;

pub use settings::{AzureBackendSettings, AzureCredentials};

use self::client::{Answer, AzureClient};
use self::convert::{
    etag_of, lock_state, metadata_headers, object_head, parse_tags, set_content_headers, set_metadata_and_tags,
    tags_xml, ETAG_META,
};
use self::names::{blob_name, bucket_of_container, container_name};
use self::transport::OneShotBody;
use super::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, CreateBucketOptions, DeleteResult, GetOptions,
    GetResult, ListOptions, ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, LockState, ObjectHead,
    PartsPage, PutOptions, PutResult, Result, UploadsPage, VersionPage, Versioning,
};

/// How long a server-side copy may stay `pending` before the backend gives up on it.
const COPY_DEADLINE: Duration = Duration::from_secs(300);

/// An Azure Blob Storage account as a backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AzureBackend {
    client: AzureClient,
}

impl AzureBackend {
    /// Builds the client. No request is made; a wrong endpoint or key shows up on first use.
    pub fn new(settings: AzureBackendSettings) -> Result<Self> {
        Ok(Self { client: AzureClient::new(&settings)? })
    }

    fn blob_url(&self, bucket: &str, key: &str, query: &[(&str, &str)]) -> Result<azure_core::http::Url> {
        self.client.url(Some(&container_name(bucket)?), Some(&blob_name(key)?), query)
    }

    /// Get Blob Properties of the object (or version).
    async fn properties(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<Answer> {
        let query: Vec<(&str, &str)> = version_id.map(|v| ("versionid", v)).into_iter().collect();
        let mut req = self.client.request(Method::Head, self.blob_url(bucket, key, &query)?);
        let not_found = if version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        match self.client.send(&mut req, not_found).await {
            // HEAD answers carry no error code: tell a missing container from a missing blob.
            Err(BackendError::NoSuchKey) => match self.head_bucket(bucket).await {
                Ok(()) => Err(BackendError::NoSuchKey),
                Err(e) => Err(e),
            },
            other => other,
        }
    }

    /// Waits until a copy to `bucket/key` has left `pending`.
    async fn await_copy(&self, bucket: &str, key: &str, mut answer: Answer) -> Result<Answer> {
        let deadline = tokio::time::Instant::now() + COPY_DEADLINE;
        let mut wait = Duration::from_millis(50);
        loop {
            match answer.header("x-ms-copy-status") {
                None | Some("success") => return Ok(answer),
                Some("pending") if tokio::time::Instant::now() < deadline => {}
                Some(status) => {
                    return Err(BackendError::Unavailable(format!("Azure server-side copy ended as {status}")));
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            answer = self.properties(bucket, key, None).await?;
        }
    }
}

fn base64_std(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

fn put_result(answer: &Answer) -> PutResult {
    PutResult {
        etag: etag_of(&answer.headers),
        version_id: answer.header("x-ms-version-id").map(str::to_owned),
        last_modified: answer.header("last-modified").and_then(|d| azure_core::time::parse_rfc7231(d).ok()),
    }
}

#[async_trait]
impl Backend for AzureBackend {
    fn kind(&self) -> &'static str {
        "azure"
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let mut buckets = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = vec![("comp", "list")];
            if let Some(m) = marker.as_deref() {
                query.push(("marker", m));
            }
            let mut req = self.client.request(Method::Get, self.client.url(None, None, &query)?);
            let body = self.client.send(&mut req, BackendError::NoSuchBucket).await?.bytes().await?;
            let page: azure_storage_blob::models::ListContainersResponse = azure_core::xml::from_xml(body)
                .map_err(|e| BackendError::Other { backend: "azure", message: format!("container listing: {e}") })?;
            for item in page.container_items {
                let Some(bucket) = item.name.as_deref().and_then(bucket_of_container) else { continue };
                let created = item.properties.and_then(|p| p.last_modified).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                buckets.push(BucketInfo { name: bucket, created });
            }
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(buckets)
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.create_bucket_with(bucket, CreateBucketOptions::default()).await
    }

    /// The region is the account's (declared in config); Object Lock has no per-container switch
    /// on the data plane (immutability is set up on the account), so both options are ignored.
    async fn create_bucket_with(&self, bucket: &str, _opts: CreateBucketOptions) -> Result<()> {
        let url = self.client.url(Some(&container_name(bucket)?), None, &[("restype", "container")])?;
        let mut req = self.client.request(Method::Put, url);
        req.set_body(bytes::Bytes::new());
        self.client.send(&mut req, BackendError::NoSuchBucket).await?;
        Ok(())
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>> {
        self.head_bucket(bucket).await?;
        Ok(None)
    }

    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        let url = self.client.url(Some(&container_name(bucket)?), None, &[("restype", "container")])?;
        let mut req = self.client.request(Method::Head, url);
        self.client.send(&mut req, BackendError::NoSuchBucket).await?;
        Ok(())
    }

    /// Refuses a container that still holds a blob. Azure has no conditional container delete, so
    /// a write landing between the check and the delete is lost with the container (documented).
    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let container = container_name(bucket)?;
        let page = listing::list_blobs(&self.client, &container, "", None, None, 1).await?;
        if !page.blob_items.is_empty() {
            return Err(BackendError::BucketNotEmpty);
        }
        multipart::abort_all(&self.client, &container).await?;
        let url = self.client.url(Some(&container), None, &[("restype", "container")])?;
        let mut req = self.client.request(Method::Delete, url);
        self.client.send(&mut req, BackendError::NoSuchBucket).await?;
        Ok(())
    }

    /// Versioning is an account setting the data plane cannot read: reported as never enabled.
    /// Versions the account keeps are still listed and addressed by id.
    async fn get_versioning(&self, bucket: &str) -> Result<Versioning> {
        self.head_bucket(bucket).await?;
        Ok(Versioning::Unversioned)
    }

    async fn put_versioning(&self, _bucket: &str, _enabled: bool) -> Result<()> {
        Err(BackendError::NotSupported("Azure blob versioning is an account setting, not a container one"))
    }

    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead> {
        let answer = self.properties(bucket, key, version_id).await?;
        object_head(key, &answer.headers)
    }

    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult> {
        let query: Vec<(&str, &str)> = opts.version_id.as_deref().map(|v| ("versionid", v)).into_iter().collect();
        let mut req = self.client.request(Method::Get, self.blob_url(bucket, key, &query)?);
        if let Some(range) = &opts.range {
            if range.start >= range.end {
                return Err(BackendError::InvalidRange);
            }
            let last = if range.end == u64::MAX { String::new() } else { (range.end - 1).to_string() };
            req.insert_header("x-ms-range", format!("bytes={}-{last}", range.start));
        }
        let not_found = if opts.version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        let answer = self.client.send(&mut req, not_found).await?;
        let head = object_head(key, &answer.headers)?;
        let length: u64 = answer.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(head.meta.size);
        let start = opts.range.as_ref().map_or(0, |r| r.start);
        if opts.range.is_some() && start >= head.meta.size {
            // Azurite answers a range past the end with the whole blob's headers and no bytes.
            return Err(BackendError::InvalidRange);
        }
        let end = start.checked_add(length).ok_or(BackendError::InvalidRange)?;
        if opts.range.as_ref().is_some_and(|r| end != r.end.min(head.meta.size)) {
            return Err(BackendError::Other { backend: "azure", message: "Azure answered another range".into() });
        }
        let body = answer.body.map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(GetResult { head, range: start..end, body: body.boxed() })
    }

    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult> {
        let container = container_name(bucket)?;
        let blob = blob_name(key)?;
        let mut upload = None;
        let mut staged_md5 = None;
        let mut req = if len <= blocks::MAX_PUT_BLOB {
            // Azure computes the MD5 of a single Put Blob itself, keeps it and answers with it.
            let mut req = self.client.request(Method::Put, self.client.url(Some(&container), Some(&blob), &[])?);
            req.insert_header("x-ms-blob-type", "BlockBlob");
            upload = Some(OneShotBody::new(body, len));
            req
        } else {
            // Too large for one Put Blob: staged blocks, committed under the same conditions with
            // the MD5 taken on the way (Azure computes none for a block list).
            let (body, md5) = blocks::md5_tap(body);
            let nonce = blocks::timed_nonce();
            let ids =
                blocks::stage_blocks(&self.client, &container, &blob, body, len, |i| format!("s{nonce}{i:06}")).await?;
            let mut req = blocks::block_list_request(&self.client, &container, &blob, &ids)?;
            let digest = md5.digest()?;
            req.insert_header("x-ms-blob-content-md5", base64_std(&digest));
            staged_md5 = Some(hex::encode(digest));
            req
        };
        if opts.if_none_match_any {
            req.insert_header("if-none-match", "*");
        }
        set_metadata_and_tags(&mut req, &opts);
        set_content_headers(&mut req, &opts.headers);
        let answer = match upload {
            Some(body) => self.client.send_body(&mut req, body, BackendError::NoSuchBucket).await?,
            None => self.client.send(&mut req, BackendError::NoSuchBucket).await?,
        };
        let mut result = put_result(&answer);
        if let Some(md5) = staged_md5 {
            result.etag = md5;
        } else if answer.header("content-md5").is_none() {
            // A service that did not answer with the MD5 still keeps it: read it back.
            result.etag = etag_of(&self.properties(bucket, key, result.version_id.as_deref()).await?.headers);
        }
        Ok(result)
    }

    /// Copy Blob, then Set Blob Properties for the content headers (a copy keeps the source's).
    async fn copy(
        &self,
        srcbucket: &str,
        srckey: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let query: Vec<(&str, &str)> = src_version.map(|v| ("versionid", v)).into_iter().collect();
        let source = self.client.url(Some(&container_name(srcbucket)?), Some(&blob_name(srckey)?), &query)?;
        // The source's S3 ETag is not Azure's: read it, check it, then pin the copy to the Azure
        // ETag seen, so the bytes copied are the ones checked.
        let src = self.properties(srcbucket, srckey, src_version).await?;
        if opts.source_if_match.as_deref().is_some_and(|want| want.trim_matches('"') != etag_of(&src.headers)) {
            return Err(BackendError::PreconditionFailed);
        }
        let mut req = self.client.request(Method::Put, self.blob_url(bucket, key, &[])?);
        req.insert_header("x-ms-copy-source", source.to_string());
        if opts.if_none_match_any {
            req.insert_header("if-none-match", "*");
        }
        if let Some(azure_etag) = src.header("etag") {
            req.insert_header("x-ms-source-if-match", azure_etag.to_owned());
        }
        set_metadata_and_tags(&mut req, &opts);
        if let Some((_, stored)) = metadata_headers(&src.headers).find(|(n, _)| n.eq_ignore_ascii_case(ETAG_META)) {
            req.insert_header(format!("x-ms-meta-{ETAG_META}"), stored);
        }
        req.set_body(bytes::Bytes::new());
        let answer = match self.client.send(&mut req, BackendError::NoSuchKey).await {
            Err(BackendError::NoSuchBucket) => {
                // The source exists, so it is the target's container that is missing.
                return Err(BackendError::NoSuchBucket);
            }
            other => other?,
        };
        self.await_copy(bucket, key, answer).await?;
        // Set Blob Properties clears what it is not given: the content headers the copy asked
        // for, and the source's MD5 again.
        let mut props = self.client.request(Method::Put, self.blob_url(bucket, key, &[("comp", "properties")])?);
        set_content_headers(&mut props, &opts.headers);
        if let Some(md5) = src.header("content-md5") {
            props.insert_header("x-ms-blob-content-md5", md5.to_owned());
        }
        props.set_body(bytes::Bytes::new());
        let answer = self.client.send(&mut props, BackendError::NoSuchKey).await?;
        let mut result = put_result(&answer);
        result.etag = etag_of(&src.headers);
        Ok(result)
    }

    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult> {
        let query: Vec<(&str, &str)> = version_id.map(|v| ("versionid", v)).into_iter().collect();
        let mut req = self.client.request(Method::Delete, self.blob_url(bucket, key, &query)?);
        match self.client.send(&mut req, BackendError::NoSuchKey).await {
            Ok(answer) => Ok(DeleteResult {
                version_id: version_id
                    .map(str::to_owned)
                    .or_else(|| answer.header("x-ms-version-id").map(str::to_owned)),
                delete_marker: false,
            }),
            Err(BackendError::NoSuchKey) => {
                Ok(DeleteResult { version_id: version_id.map(str::to_owned), delete_marker: false })
            }
            Err(e) => Err(e),
        }
    }

    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>> {
        let mut query = vec![("comp", "tags")];
        if let Some(v) = version_id {
            query.push(("versionid", v));
        }
        let mut req = self.client.request(Method::Get, self.blob_url(bucket, key, &query)?);
        let not_found = if version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        let body = self.client.send(&mut req, not_found).await?.bytes().await?;
        parse_tags(&body)
    }

    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut query = vec![("comp", "tags")];
        if let Some(v) = version_id {
            query.push(("versionid", v));
        }
        let mut req = self.client.request(Method::Put, self.blob_url(bucket, key, &query)?);
        req.insert_header("content-type", "application/xml; charset=UTF-8");
        req.set_body(bytes::Bytes::from(tags_xml(tags)));
        let not_found = if version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        self.client.send(&mut req, not_found).await?;
        Ok(())
    }

    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        let answer = self.properties(bucket, key, version_id).await?;
        Ok(lock_state(&answer.headers))
    }

    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        listing::list_page(&self.client, &container_name(bucket)?, &opts).await
    }

    /// Lists with `include=versions`: an account that keeps versions shows them all, one that does
    /// not shows each current blob as its only version.
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        listing::list_versions_page(&self.client, &container_name(bucket)?, &opts).await
    }

    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        multipart::create(&self.client, &container_name(bucket)?, key, &opts).await
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
    ) -> Result<String> {
        multipart::upload_part(&self.client, &container_name(bucket)?, key, upload_id, part_number, body, len).await
    }

    /// Azure's Put Block From URL needs the source to be readable by URL (a SAS or public access),
    /// which a SharedKey account is not: the range streams through blobseal instead.
    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        srcbucket: &str,
        srckey: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<String> {
        let container = container_name(bucket)?;
        multipart::check_upload(&self.client, &container, key, upload_id).await?;
        let source = self.get(srcbucket, srckey, GetOptions { range, version_id: None }).await?;
        let len = source.range.end - source.range.start;
        if len > super::MAX_PART_SIZE {
            return Err(BackendError::InvalidRequest("a copied part may be at most 5 GiB".into()));
        }
        multipart::upload_part(&self.client, &container, key, upload_id, part_number, source.body, len).await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        let container = container_name(bucket)?;
        let (done, etag) =
            multipart::complete(&self.client, &container, key, upload_id, parts, if_none_match_any).await?;
        let answer = self.await_copy(bucket, key, done).await?;
        multipart::discard(&self.client, &container, upload_id).await?;
        Ok(PutResult { etag, ..put_result(&answer) })
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let container = container_name(bucket)?;
        multipart::check_upload(&self.client, &container, key, upload_id).await?;
        multipart::discard(&self.client, &container, upload_id).await
    }

    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage> {
        multipart::list_parts(&self.client, &container_name(bucket)?, key, upload_id, &opts).await
    }

    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        let container = container_name(bucket)?;
        self.head_bucket(bucket).await?;
        multipart::list_uploads(&self.client, &container, &opts).await
    }
}
