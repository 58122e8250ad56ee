//! Container metadata (Azure's Create Container with metadata, Set/Get Container Metadata). S3 buckets have
//! none, so it lives in the bucket itself, as the user metadata of one empty object in blobseal's reserved
//! namespace (`.blobseal/container-metadata`), invisible to both front ends' listings. Like object user
//! metadata it is stored as the client sent it (names lower case): never put personal data in it.

use std::collections::BTreeMap;

use crate::backend::{BackendError, PutOptions};
use crate::core::error::CoreResult;
use crate::core::service::BlobService;
use crate::core::tenant::Tenant;

/// Where a container's metadata lives.
pub const CONTAINER_META_KEY: &str = ".blobseal/container-metadata";

impl BlobService {
    /// The container's metadata (empty if none was set). Fails if the bucket does not exist.
    pub async fn container_metadata(&self, tenant: &Tenant, bucket: &str) -> CoreResult<BTreeMap<String, String>> {
        let p = self.place(tenant, bucket)?;
        match p.backend.head(&p.bucket, CONTAINER_META_KEY, None).await {
            Ok(head) => Ok(head.metadata),
            Err(BackendError::NoSuchKey) => {
                p.backend.head_bucket(&p.bucket).await?;
                Ok(BTreeMap::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the container's metadata (empty removes it).
    pub async fn set_container_metadata(
        &self,
        tenant: &Tenant,
        bucket: &str,
        metadata: BTreeMap<String, String>,
    ) -> CoreResult<()> {
        Self::check_client_metadata(&metadata)?;
        let p = self.place(tenant, bucket)?;
        p.backend.head_bucket(&p.bucket).await?;
        if metadata.is_empty() {
            p.backend.delete(&p.bucket, CONTAINER_META_KEY, None).await?;
            return Ok(());
        }
        let body = Box::pin(futures::stream::empty());
        let opts = PutOptions { metadata, ..PutOptions::default() };
        p.backend.put(&p.bucket, CONTAINER_META_KEY, body, 0, opts).await?;
        Ok(())
    }

    /// Deletes the container and every blob in it, as Azure's Delete Container does (S3's DeleteBucket
    /// needs an empty bucket). At most `max_objects` blobs are deleted; a bigger container answers
    /// BucketNotEmpty and is left with the rest.
    pub async fn delete_bucket_and_objects(&self, tenant: &Tenant, bucket: &str, max_objects: usize) -> CoreResult<()> {
        let p = self.place(tenant, bucket)?;
        let mut deleted = 0usize;
        loop {
            let opts = crate::backend::ListOptions { max_keys: 1000, ..Default::default() };
            let page = p.backend.list(&p.bucket, opts).await?;
            let visible: Vec<_> = page
                .objects
                .into_iter()
                .filter(|o| !o.key.starts_with(crate::core::upload_token::RESERVED_KEY_PREFIX))
                .collect();
            if visible.is_empty() || deleted >= max_objects {
                break;
            }
            for o in visible {
                p.backend.delete(&p.bucket, &o.key, None).await?;
                deleted += 1;
            }
        }
        self.delete_bucket(tenant, bucket).await
    }
}
