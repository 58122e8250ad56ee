//! Who is calling: access key → secret (for s3s's SigV4 check) and → tenant (for every operation).

use std::collections::HashMap;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::core::service::BlobService;
use crate::core::tenant::Tenant;

/// Answers s3s's "what is the secret of this access key?"; s3s then verifies the signature
/// (headers, presigned query, aws-chunked chunks and trailers) before any of our code runs.
pub struct TenantAuth {
    secrets: HashMap<String, SecretKey>,
}

impl TenantAuth {
    pub fn new(secrets: HashMap<String, SecretKey>) -> Self {
        Self { secrets }
    }
}

#[async_trait::async_trait]
impl S3Auth for TenantAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.secrets.get(access_key) {
            Some(secret) => Ok(secret.clone()),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}

/// Resolves the authenticated caller to its tenant and hands it to the operation through the
/// request extensions. Anonymous requests are refused.
pub struct TenantAccess {
    core: Arc<BlobService>,
}

impl TenantAccess {
    pub fn new(core: Arc<BlobService>) -> Self {
        Self { core }
    }
}

#[async_trait::async_trait]
impl S3Access for TenantAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous requests are not allowed"));
        };
        let tenant: Arc<Tenant> =
            self.core.tenant_for_access_key(&creds.access_key).map_err(|_| s3_error!(AccessDenied))?;
        cx.extensions_mut().insert(tenant);
        Ok(())
    }
}
