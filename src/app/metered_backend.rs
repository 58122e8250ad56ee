//! A backend layer that counts every call, its outcome and its latency in the metrics
//! (`blobseal_backend_calls_total{target, call, outcome}` and the duration histogram).
//!
//! Outcomes: `ok`; `answer` for the backend's ordinary negative answers (no such key, precondition
//! failed, bucket exists, ...), which are part of normal traffic; `error` for failures (unavailable,
//! throttled, permission denied, anything else), the ones an operator alerts on. A `get`'s latency
//! is the time to its response head: the body streams afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::backend::{
    Backend, BackendError, BucketInfo, ByteStream, CompletedPart, CreateBucketOptions, DeleteResult, GetOptions,
    GetResult, ListOptions, ListPage, ListPartsOptions, ListUploadsOptions, ListVersionsOptions, LockState, ObjectHead,
    PartsPage, PutOptions, PutResult, Result, UploadsPage, VersionPage, Versioning,
};
use crate::metrics::{CallLabels, Metrics};

/// Wraps `inner`, labelling its calls with the backend's config name.
#[derive(Debug)]
pub struct MeteredBackend {
    name: String,
    inner: Arc<dyn Backend>,
}

impl MeteredBackend {
    pub fn new(name: &str, inner: Arc<dyn Backend>) -> Self {
        Self { name: name.to_owned(), inner }
    }

    fn record<T>(&self, call: &'static str, started: Instant, result: &Result<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => outcome_of(e),
        };
        let m = crate::metrics::get();
        let labels = CallLabels { target: self.name.clone(), call, outcome };
        Metrics::observe_call(&m.backend_calls, &m.backend_call_duration, &labels, started.elapsed());
    }
}

fn outcome_of(e: &BackendError) -> &'static str {
    match e {
        BackendError::NoSuchKey
        | BackendError::NoSuchBucket
        | BackendError::NoSuchVersion
        | BackendError::NoSuchUpload
        | BackendError::BucketAlreadyExists
        | BackendError::BucketNotEmpty
        | BackendError::PreconditionFailed
        | BackendError::InvalidRange
        | BackendError::InvalidPart(_)
        | BackendError::InvalidPartOrder
        | BackendError::EntityTooSmall
        | BackendError::ObjectLocked(_)
        | BackendError::NotSupported(_)
        | BackendError::InvalidRequest(_) => "answer",
        _ => "error",
    }
}

/// `self.inner.$call(args..)`, timed and counted under `$call`'s name.
macro_rules! metered {
    ($self:ident, $call:ident ( $($arg:expr),* )) => {{
        let started = Instant::now();
        let r = $self.inner.$call($($arg),*).await;
        $self.record(stringify!($call), started, &r);
        r
    }};
}

#[async_trait]
impl Backend for MeteredBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        metered!(self, list_buckets())
    }
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        metered!(self, create_bucket(bucket))
    }
    async fn create_bucket_with(&self, bucket: &str, opts: CreateBucketOptions) -> Result<()> {
        metered!(self, create_bucket_with(bucket, opts))
    }
    async fn bucket_region(&self, bucket: &str) -> Result<Option<String>> {
        metered!(self, bucket_region(bucket))
    }
    async fn head_bucket(&self, bucket: &str) -> Result<()> {
        metered!(self, head_bucket(bucket))
    }
    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        metered!(self, delete_bucket(bucket))
    }
    async fn get_versioning(&self, bucket: &str) -> Result<Versioning> {
        metered!(self, get_versioning(bucket))
    }
    async fn put_versioning(&self, bucket: &str, enabled: bool) -> Result<()> {
        metered!(self, put_versioning(bucket, enabled))
    }
    async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<ObjectHead> {
        metered!(self, head(bucket, key, version_id))
    }
    async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult> {
        metered!(self, get(bucket, key, opts))
    }
    async fn put(&self, bucket: &str, key: &str, body: ByteStream, len: u64, opts: PutOptions) -> Result<PutResult> {
        metered!(self, put(bucket, key, body, len, opts))
    }
    async fn copy(
        &self,
        srcbucket: &str,
        srckey: &str,
        src_version: Option<&str>,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> Result<PutResult> {
        metered!(self, copy(srcbucket, srckey, src_version, bucket, key, opts))
    }
    async fn delete(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteResult> {
        metered!(self, delete(bucket, key, version_id))
    }
    async fn get_tags(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<BTreeMap<String, String>> {
        metered!(self, get_tags(bucket, key, version_id))
    }
    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        metered!(self, put_tags(bucket, key, version_id, tags))
    }
    async fn lock_state(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<LockState> {
        metered!(self, lock_state(bucket, key, version_id))
    }
    async fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListPage> {
        metered!(self, list(bucket, opts))
    }
    async fn list_versions(&self, bucket: &str, opts: ListVersionsOptions) -> Result<VersionPage> {
        metered!(self, list_versions(bucket, opts))
    }
    async fn create_upload(&self, bucket: &str, key: &str, opts: PutOptions) -> Result<String> {
        metered!(self, create_upload(bucket, key, opts))
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
        metered!(self, upload_part(bucket, key, upload_id, part_number, body, len))
    }
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
        metered!(self, upload_part_copy(bucket, key, upload_id, part_number, srcbucket, srckey, range))
    }
    async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        if_none_match_any: bool,
    ) -> Result<PutResult> {
        metered!(self, complete_upload(bucket, key, upload_id, parts, if_none_match_any))
    }
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        metered!(self, abort_upload(bucket, key, upload_id))
    }
    async fn list_parts(&self, bucket: &str, key: &str, upload_id: &str, opts: ListPartsOptions) -> Result<PartsPage> {
        metered!(self, list_parts(bucket, key, upload_id, opts))
    }
    async fn list_uploads(&self, bucket: &str, opts: ListUploadsOptions) -> Result<UploadsPage> {
        metered!(self, list_uploads(bucket, opts))
    }
    async fn housekeep(&self, older_than: std::time::SystemTime) -> Result<u64> {
        metered!(self, housekeep(older_than))
    }
}
