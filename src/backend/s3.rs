//! [`S3Backend`]: objects in an S3-compatible service, through `aws-sdk-s3`.
//!
//! Bodies stream both ways and are never buffered whole. Every SDK error is converted in one
//! place, [`map_err`]. Version id `"null"` (S3's name for "no version") is reported as `None`.
//! Bucket regions, tags and Object Lock state: `s3/governance.rs`.

mod blank_key;
mod body;
mod compat;
#[macro_use]
mod convert;
mod governance;
mod multipart;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{BucketVersioningStatus, MetadataDirective, TaggingDirective, VersioningConfiguration};

use self::blank_key::{wire_key, BlankKeyPath};
use self::body::{body_failed, download, upload_body};
use self::convert::{
    encode_copy_source, encode_tagging, etag, map_err, metadata, parse_content_range, parse_expires, size, to_time,
    unparsed_versioning, version,
};
use super::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, CreateBucketOptions, DeleteResult, GetOptions,
    GetResult, ListOptions, ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, LockState, ObjectHead,
    ObjectMeta, PartsPage, PutOptions, PutResult, Result, UploadsPage, VersionEntry, VersionPage, Versioning,
};

/// How to reach and sign for one S3-compatible service.
#[derive(Clone)]
pub struct S3BackendSettings {
    /// Endpoint URL (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    /// Never printed: `Debug` shows `***`.
    pub secret_access_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.
    pub force_path_style: bool,
}

impl fmt::Debug for S3BackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BackendSettings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// An S3-compatible backend. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct S3Backend {
    client: aws_sdk_s3::Client,
    region: String,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend").field("region", &self.region).finish_non_exhaustive()
    }
}

/// Connecting must be quick: a dead backend should surface as `Unavailable` in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest silence while waiting for response bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl S3Backend {
    /// Builds the client. No request is made; a wrong endpoint or credentials show up on first use.
    pub fn new(settings: S3BackendSettings) -> Result<Self> {
        let creds = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.as_str(),
            None,
            None,
            "blobseal-config",
        );
        let timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build();
        // Our upload body waits on the client's upload; a slow client is not a stalled backend.
        let stall = StalledStreamProtectionConfig::enabled().upload_enabled(false).download_enabled(true).build();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(creds)
            .force_path_style(settings.force_path_style)
            .timeout_config(timeouts)
            .stalled_stream_protection(stall)
            // Keys of only whitespace: see blank_key.rs.
            .interceptor(BlankKeyPath)
            .retry_config(
                RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(200)),
            );
        if let Some(endpoint) = &settings.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(BackendError::InvalidRequest(format!("S3 endpoint {endpoint:?} is not an http(s) URL")));
            }
            // Non-AWS servers do not store the SDK's default CRC checksums (FACTS.md).
            b = b
                .endpoint_url(endpoint)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(Self { client: aws_sdk_s3::Client::from_conf(b.build()), region: settings.region })
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let out = self.client.list_buckets().send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        Ok(out
            .buckets()
            .iter()
            .filter_map(|b| Some(BucketInfo { name: b.name()?.to_owned(), created: to_time(b.creation_date()) }))
            .collect())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.create_bucket_with(bucket, CreateBucketOptions::default()).await
    }

    /// See `governance::create_bucket` for us-east-1's quirk.
    async fn create_bucket_with(&self, bucket: &str, opts: CreateBucketOptions) -> Result<()> {
        let region = opts.region.as_deref().unwrap_or(&self.region);
        governance::create_bucket(&self.client, bucket, region, opts.object_lock).await
    }

    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>> {
        governance::bucket_region(&self.client, bucket).await
    }

    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        self.client.head_bucket().bucket(bucket).send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        Ok(())
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        self.client.delete_bucket().bucket(bucket).send().await.map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        Ok(())
    }

    async fn get_versioning(&self, bucket: &str) -> Result<Versioning> {
        let out = match self.client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(out) => out,
            Err(e) => {
                return match unparsed_versioning(&e).ok_or_else(|| map_err(e, BackendError::NoSuchBucket)) {
                    // A server without versioning (s3s-fs) has only unversioned buckets.
                    Err(BackendError::NotSupported(_)) => Ok(Versioning::Unversioned),
                    other => other,
                };
            }
        };
        Ok(match out.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Unversioned,
        })
    }

    async fn put_versioning(&self, bucket: &str, enabled: bool) -> Result<()> {
        let status = if enabled { BucketVersioningStatus::Enabled } else { BucketVersioningStatus::Suspended };
        self.client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        Ok(())
    }

    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead> {
        let not_found = if version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(wire_key(key))
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_err(e, not_found))?;
        Ok(ObjectHead {
            meta: ObjectMeta {
                key: key.to_owned(),
                size: size(out.content_length()),
                etag: etag(out.e_tag()),
                last_modified: to_time(out.last_modified()),
                version_id: version(out.version_id()),
            },
            metadata: metadata(out.metadata()),
            headers: content_headers!(out),
        })
    }

    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult> {
        let range = match &opts.range {
            None => None,
            Some(r) if r.end <= r.start => return Err(BackendError::InvalidRange),
            Some(r) if r.end == u64::MAX => Some(format!("bytes={}-", r.start)),
            Some(r) => Some(format!("bytes={}-{}", r.start, r.end - 1)),
        };
        let not_found = if opts.version_id.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(wire_key(key))
            .set_version_id(opts.version_id.clone())
            .set_range(range)
            .send()
            .await
            .map_err(|e| map_err(e, not_found))?;
        let length = size(out.content_length());
        let (range, total) = match out.content_range().and_then(parse_content_range) {
            Some(r) => r,
            None if opts.range.as_ref().is_some_and(|r| r.start > 0) => {
                return Err(BackendError::Other { backend: "s3", message: "ranged GET without Content-Range".into() })
            }
            None => (0..length, length),
        };
        let head = ObjectHead {
            meta: ObjectMeta {
                key: key.to_owned(),
                size: total,
                etag: etag(out.e_tag()),
                last_modified: to_time(out.last_modified()),
                version_id: version(out.version_id()),
            },
            metadata: metadata(out.metadata()),
            headers: content_headers!(out),
        };
        Ok(GetResult { head, range, body: download(out.body) })
    }

    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult> {
        let content_length = i64::try_from(len).map_err(|_| BackendError::InvalidRequest("body too large".into()))?;
        let (upload, failed) = upload_body(body, len);
        let h = opts.headers;
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(wire_key(key))
            .content_length(content_length)
            .body(upload)
            .set_metadata(Some(opts.metadata.into_iter().collect()))
            .set_content_type(h.content_type)
            .set_content_encoding(h.content_encoding)
            .set_content_disposition(h.content_disposition)
            .set_content_language(h.content_language)
            .set_cache_control(h.cache_control)
            .set_expires(parse_expires(h.expires.as_deref())?)
            .set_tagging(encode_tagging(&opts.tags))
            .set_if_none_match(opts.if_none_match_any.then(|| "*".to_owned()))
            .send()
            .await;
        match out {
            // Whatever the SDK made of it, a broken body is the caller's stream failing.
            Err(_) if failed.load(Ordering::SeqCst) => Err(body_failed()),
            Err(e) => Err(map_err(e, BackendError::NoSuchBucket)),
            Ok(out) => {
                Ok(PutResult { etag: etag(out.e_tag()), version_id: version(out.version_id()), last_modified: None })
            }
        }
    }

    async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let h = opts.headers;
        let not_found = if src_version.is_some() { BackendError::NoSuchVersion } else { BackendError::NoSuchKey };
        let out = self
            .client
            .copy_object()
            .bucket(bucket)
            .key(wire_key(key))
            .copy_source(encode_copy_source(src_bucket, src_key, src_version))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(opts.metadata.into_iter().collect()))
            .set_content_type(h.content_type)
            .set_content_encoding(h.content_encoding)
            .set_content_disposition(h.content_disposition)
            .set_content_language(h.content_language)
            .set_cache_control(h.cache_control)
            .set_expires(parse_expires(h.expires.as_deref())?)
            // REPLACE with no tagging header leaves the copy untagged, as `PutOptions::tags` promises.
            .tagging_directive(TaggingDirective::Replace)
            .set_tagging(encode_tagging(&opts.tags))
            .set_if_none_match(opts.if_none_match_any.then(|| "*".to_owned()))
            .set_copy_source_if_match(opts.source_if_match.map(|e| format!("\"{e}\"")))
            .send()
            .await
            .map_err(|e| map_err(e, not_found))?;
        let result = out.copy_object_result();
        Ok(PutResult {
            etag: etag(result.and_then(|r| r.e_tag())),
            version_id: version(out.version_id()),
            last_modified: result.and_then(|r| r.last_modified()).map(|t| to_time(Some(t))),
        })
    }

    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult> {
        let out = self
            .client
            .delete_object()
            .bucket(bucket)
            .key(wire_key(key))
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_err(e, BackendError::NoSuchBucket))
            .map_err(|e| match version_id {
                Some(v) => governance::locked_version(e, key, v),
                None => e,
            })?;
        Ok(DeleteResult { version_id: version(out.version_id()), delete_marker: out.delete_marker().unwrap_or(false) })
    }

    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>> {
        governance::get_tags(&self.client, bucket, key, version_id).await
    }

    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        governance::put_tags(&self.client, bucket, key, version_id, tags).await
    }

    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        governance::lock_state(&self.client, bucket, key, version_id).await
    }

    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        let max_keys = i32::try_from(opts.max_keys).unwrap_or(1000);
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix(Some(opts.prefix).filter(|p| !p.is_empty()))
            .set_delimiter(opts.delimiter)
            .set_start_after(opts.start_after)
            .set_continuation_token(opts.continuation)
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: o.key()?.to_owned(),
                    size: size(o.size()),
                    etag: etag(o.e_tag()),
                    last_modified: to_time(o.last_modified()),
                    version_id: None,
                })
            })
            .collect();
        Ok(ListPage {
            objects,
            common_prefixes: out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect(),
            is_truncated: out.is_truncated().unwrap_or(false),
            next_token: out.next_continuation_token().map(str::to_owned),
        })
    }

    /// The SDK returns versions and delete markers as two lists; they are merged back into S3's
    /// order: by key, then latest first, then newest first (ties keep the server's order).
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        let max_keys = i32::try_from(opts.max_keys).unwrap_or(1000);
        let out = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(Some(opts.prefix).filter(|p| !p.is_empty()))
            .set_delimiter(opts.delimiter)
            .set_key_marker(opts.key_marker)
            .set_version_id_marker(opts.version_id_marker)
            .max_keys(max_keys)
            .send()
            .await
            .map_err(|e| map_err(e, BackendError::NoSuchBucket))?;
        let mut entries: Vec<(VersionEntry, Option<DateTime>)> = Vec::new();
        for v in out.versions() {
            let Some(key) = v.key() else { continue };
            let meta = ObjectMeta {
                key: key.to_owned(),
                size: size(v.size()),
                etag: etag(v.e_tag()),
                last_modified: to_time(v.last_modified()),
                version_id: version(v.version_id()),
            };
            let entry = VersionEntry { meta, is_latest: v.is_latest().unwrap_or(false), is_delete_marker: false };
            entries.push((entry, v.last_modified().copied()));
        }
        for m in out.delete_markers() {
            let Some(key) = m.key() else { continue };
            let meta = ObjectMeta {
                key: key.to_owned(),
                size: 0,
                etag: String::new(),
                last_modified: to_time(m.last_modified()),
                version_id: version(m.version_id()),
            };
            let entry = VersionEntry { meta, is_latest: m.is_latest().unwrap_or(false), is_delete_marker: true };
            entries.push((entry, m.last_modified().copied()));
        }
        entries.sort_by(|(a, at), (b, bt)| {
            let newest = |t: &Option<DateTime>| std::cmp::Reverse(t.map(|t| t.as_nanos()));
            (a.meta.key.as_str(), !a.is_latest, newest(at)).cmp(&(b.meta.key.as_str(), !b.is_latest, newest(bt)))
        });
        Ok(VersionPage {
            versions: entries.into_iter().map(|(e, _)| e).collect(),
            common_prefixes: out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect(),
            is_truncated: out.is_truncated().unwrap_or(false),
            next_key_marker: out.next_key_marker().map(str::to_owned),
            next_version_id_marker: out.next_version_id_marker().map(str::to_owned),
        })
    }

    // Multipart: see `s3/multipart.rs`.

    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        multipart::create(&self.client, bucket, key, opts).await
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
        multipart::upload_part(&self.client, bucket, key, upload_id, part_number, body, len).await
    }

    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        src_bucket: &str,
        src_key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<String> {
        let c = &self.client;
        multipart::upload_part_copy(c, bucket, key, upload_id, part_number, src_bucket, src_key, range).await
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        multipart::complete(&self.client, bucket, key, upload_id, parts, if_none_match_any).await
    }

    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        multipart::abort(&self.client, bucket, key, upload_id).await
    }

    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage> {
        multipart::list_parts(&self.client, bucket, key, upload_id, opts).await
    }

    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        multipart::list_uploads(&self.client, bucket, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_hides_the_secret() {
        let s = S3BackendSettings {
            endpoint: None,
            region: "eu-west-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            force_path_style: true,
        };
        let shown = format!("{s:?}");
        assert!(shown.contains("AKID") && !shown.contains("very-secret"), "{shown}");
    }
}
