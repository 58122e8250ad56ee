//! The S3 front end: s3s does the protocol (routing, SigV4, aws-chunked, XML); this module turns
//! typed S3 operations into `BlobService` calls and maps errors back (`error.rs`).

mod auth;
mod buckets;
pub mod checksum;
mod conditions;
pub(crate) mod convert;
pub mod error;
pub mod gate;
pub(crate) mod host;
mod list;
mod multipart;
mod objects;
pub mod operation;
mod service;

use std::collections::HashMap;
use std::sync::Arc;

use s3s::auth::SecretKey;
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::core::service::BlobService;

pub use service::S3Front;

/// Why the S3 service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid virtual-host domain {0:?}")]
    VirtualHostDomain(String),
}

/// Builds the S3 HTTP service: signature checks against `secrets` (access key id → secret),
/// tenant resolution, and path-style addressing, plus virtual-host style under `vhost_domain`.
pub fn build_service(
    core: Arc<BlobService>,
    secrets: HashMap<String, SecretKey>,
    vhost_domain: Option<&str>,
) -> Result<S3Service, BuildError> {
    let mut builder = S3ServiceBuilder::new(S3Front::new(Arc::clone(&core)));
    builder.set_auth(auth::TenantAuth::new(secrets));
    builder.set_access(auth::TenantAccess::new(core));
    if let Some(domain) = vhost_domain {
        let host =
            host::BucketSubdomains::new(domain).ok_or_else(|| BuildError::VirtualHostDomain(domain.to_owned()))?;
        builder.set_host(host);
    }
    Ok(builder.build())
}
