//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! Get/PutBucketVersioning.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{tenant, timestamp};
use super::error::{core_call, to_s3_error};
use crate::backend::Versioning;
use crate::core::service::BlobService;

/// S3's largest ListBuckets page.
const MAX_BUCKETS: usize = 10_000;

/// ListBuckets, with S3's optional paging: `max-buckets` (1..=10000) and a `continuation-token`,
/// which here is the last bucket name of the previous page (names are sorted and unique).
pub async fn list_buckets(
    core: &BlobService,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let tenant = tenant(&req)?;
    let input = req.input;
    let limit = match input.max_buckets {
        None => None,
        Some(n) => Some(
            usize::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_BUCKETS).contains(n))
                .ok_or_else(|| s3_error!(InvalidArgument, "max-buckets must be an integer between 1 and 10000"))?,
        ),
    };
    let all = core.list_buckets(&tenant).await.map_err(to_s3_error)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = input.continuation_token.filter(|t| !t.is_empty());
    let mut matching =
        all.into_iter().filter(|b| b.name.starts_with(&prefix) && after.as_ref().is_none_or(|a| b.name > *a));
    let page: Vec<_> = match limit {
        Some(n) => matching.by_ref().take(n).collect(),
        None => matching.by_ref().collect(),
    };
    // A token only when another bucket follows, so the last page carries none (as in S3).
    let continuation_token = match (limit, matching.next(), page.last()) {
        (Some(_), Some(_), Some(last)) => Some(last.name.clone()),
        _ => None,
    };
    let buckets = page
        .into_iter()
        .map(|b| Bucket { name: Some(b.name), creation_date: Some(timestamp(b.created)), bucket_region: None })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner { display_name: Some(tenant.name.clone()), id: Some(tenant.name.clone()) }),
        continuation_token,
        prefix: input.prefix,
    }))
}

pub async fn create_bucket(
    core: &BlobService,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let tenant = tenant(&req)?;
    let location = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    let bucket = req.input.bucket;
    core_call!(core, &tenant, &[], core.create_bucket(&tenant, &bucket, location.as_deref()));
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
}

pub async fn head_bucket(
    core: &BlobService,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let tenant = tenant(&req)?;
    let region = core_call!(core, &tenant, &[&req.input.bucket], core.bucket_region(&tenant, &req.input.bucket));
    Ok(S3Response::new(HeadBucketOutput { bucket_region: region, ..Default::default() }))
}

pub async fn delete_bucket(
    core: &BlobService,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let tenant = tenant(&req)?;
    core_call!(core, &tenant, &[&req.input.bucket], core.delete_bucket(&tenant, &req.input.bucket));
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn get_bucket_location(
    core: &BlobService,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let tenant = tenant(&req)?;
    let region = core_call!(core, &tenant, &[&req.input.bucket], core.bucket_region(&tenant, &req.input.bucket));
    // S3 reports us-east-1 as an empty LocationConstraint.
    let location_constraint = region.filter(|r| r != "us-east-1").map(BucketLocationConstraint::from);
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

pub async fn get_bucket_versioning(
    core: &BlobService,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let tenant = tenant(&req)?;
    let state = core_call!(core, &tenant, &[&req.input.bucket], core.get_versioning(&tenant, &req.input.bucket));
    let status = match state {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
        Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
    };
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
}

pub async fn put_bucket_versioning(
    core: &BlobService,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let tenant = tenant(&req)?;
    let enabled = match req.input.versioning_configuration.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => true,
        Some(BucketVersioningStatus::SUSPENDED) => false,
        _ => return Err(s3_error!(MalformedXML, "versioning Status must be Enabled or Suspended")),
    };
    core_call!(core, &tenant, &[&req.input.bucket], core.put_versioning(&tenant, &req.input.bucket, enabled));
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}
