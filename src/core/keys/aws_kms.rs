//! [`AwsKms`]: tenant root keys held in AWS KMS (or a KMS-compatible service), through `aws-sdk-kms`.
//!
//! Each tenant root key is one symmetric KMS key (`SYMMETRIC_DEFAULT`, `ENCRYPT_DECRYPT`), tagged
//! `blobseal:tenant=<tenant>`; its ARN is the root id. Lifetime keys are wrapped with `Encrypt` and
//! unwrapped with `Decrypt`, always naming the key (`KeyId`) and binding the encryption context
//! `{"blobseal:tenant": <tenant>, "blobseal:key-id": <lifetime key id>}` ([`WrapContext`]). KMS is
//! called rarely (the caller caches unwrapped lifetime keys), so there is no local cache of keys here;
//! only the verified owner of each root id is remembered (see below).
//!
//! Ownership: before a root id is used for `tenant`, its `blobseal:tenant` tag is read once
//! (`ListResourceTags`) and must equal `tenant`; a root of another tenant is refused without being
//! used ([`KeyError::UnknownKey`] for wrap and destroy, [`KeyError::Unwrap`] for unwrap). The KMS
//! principal therefore needs `kms:CreateKey`, `kms:TagResource`, `kms:ListResourceTags`,
//! `kms:Encrypt`, `kms:Decrypt`, `kms:DisableKey`, `kms:ScheduleKeyDeletion` and `kms:DescribeKey`.
//!
//! Destroying a root disables the key at once and schedules its deletion after
//! [`AwsKmsSettings::deletion_window_days`] (AWS allows 7..=30); the receipt says both.
//!
//! Error mapping (one place, [`map_sdk_err`] → [`classify`]):
//! - `InvalidCiphertextException`, `IncorrectKeyException` → [`KeyError::Unwrap`] (tampered blob,
//!   other context, other key);
//! - `NotFoundException`, `KMSInvalidStateException` (disabled, pending deletion), `DisabledException`
//!   → [`KeyError::Destroyed`], naming only the key ARN;
//! - `InvalidArnException`, `InvalidKeyUsageException` → [`KeyError::UnknownKey`] (not a usable root);
//! - timeouts, connection failures, throttling, 5xx, access denied and anything else →
//!   [`KeyError::Unavailable`] with a short reason (operation, error code, HTTP status).
//!
//! No message ever contains key material, ciphertext or credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::{Blob, DateTime, DateTimeFormat};
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, Tag};
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::{DataKey, Destruction, KeyError, KeyProvider, WrapContext};

/// The tag naming a root key's tenant, and the encryption-context key naming it.
const TENANT_TAG: &str = "blobseal:tenant";
/// The encryption-context key naming the lifetime key.
const KEY_ID_CONTEXT: &str = "blobseal:key-id";
/// A dead KMS must fail a request in seconds, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt; with [`MAX_ATTEMPTS`] the whole call stays under [`OPERATION_TIMEOUT`].
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ATTEMPTS: u32 = 2;
/// AWS's limits for `PendingWindowInDays`.
const DELETION_WINDOW: std::ops::RangeInclusive<i32> = 7..=30;
/// Longest transport detail kept in an `Unavailable` reason.
const MAX_DETAIL: usize = 200;

/// How to reach and sign for KMS.
#[derive(Clone)]
pub struct AwsKmsSettings {
    /// Endpoint URL (`http://127.0.0.1:5000` for moto); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// AWS region (`eu-central-1`); must not be empty.
    pub region: String,
    pub access_key_id: String,
    /// Never printed: `Debug` shows `***`.
    pub secret_access_key: String,
    /// Days between destroying a root key and KMS deleting it for good; AWS allows 7..=30.
    pub deletion_window_days: i32,
}

impl fmt::Debug for AwsKmsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsSettings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("deletion_window_days", &self.deletion_window_days)
            .finish()
    }
}

impl AwsKmsSettings {
    /// Checks what can be checked without calling KMS. Errors are [`KeyError::Keyring`] (the
    /// provider's configuration is unusable).
    pub fn validate(&self) -> Result<(), KeyError> {
        let bad = |what: String| Err(KeyError::Keyring(format!("aws-kms settings: {what}")));
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return bad(format!("endpoint {endpoint:?} is not an http(s) URL"));
            }
        }
        if self.region.is_empty() || !self.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad(format!("region {:?} is not a region name", self.region));
        }
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return bad("access key id and secret access key must not be empty".into());
        }
        if !DELETION_WINDOW.contains(&self.deletion_window_days) {
            return bad(format!(
                "deletion_window_days {} is outside {}..={} (AWS's limits)",
                self.deletion_window_days,
                DELETION_WINDOW.start(),
                DELETION_WINDOW.end()
            ));
        }
        Ok(())
    }
}

/// A [`KeyProvider`] whose root keys are AWS KMS keys. Cheap to share; the SDK client is reused.
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    endpoint: Option<String>,
    region: String,
    deletion_window_days: i32,
    /// Root ARN → tenant, for roots whose `blobseal:tenant` tag was verified. Only positive answers
    /// are kept, so a failed lookup is retried next time.
    owners: RwLock<HashMap<String, String>>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("deletion_window_days", &self.deletion_window_days)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// Builds the client after [`AwsKmsSettings::validate`]. No request is made: a wrong endpoint or
    /// credentials show up on first use as [`KeyError::Unavailable`].
    pub fn new(settings: AwsKmsSettings) -> Result<Self, KeyError> {
        settings.validate()?;
        let creds = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.as_str(),
            None,
            None,
            "blobseal-config",
        );
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut b = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(creds)
            .timeout_config(timeouts)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200)),
            );
        if let Some(endpoint) = &settings.endpoint {
            b = b.endpoint_url(endpoint);
        }
        Ok(Self {
            client: aws_sdk_kms::Client::from_conf(b.build()),
            endpoint: settings.endpoint.clone(),
            region: settings.region.clone(),
            deletion_window_days: settings.deletion_window_days,
            owners: RwLock::new(HashMap::new()),
        })
    }

    /// Whether `root_id` is tagged as `tenant`'s root key (cached once true).
    async fn owned_by(&self, root_id: &str, tenant: &str) -> Result<bool, KeyError> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let cached = self.owners.read().unwrap_or_else(PoisonError::into_inner).get(root_id).cloned();
        if let Some(owner) = cached {
            return Ok(owner == tenant);
        }
        // 50 is both the page maximum and AWS's tag limit per key: one page holds every tag.
        let out = self
            .client
            .list_resource_tags()
            .key_id(root_id)
            .limit(50)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "ListResourceTags", root_id))?;
        let Some(owner) = out.tags().iter().find(|t| t.tag_key() == TENANT_TAG).map(|t| t.tag_value()) else {
            return Ok(false);
        };
        self.owners.write().unwrap_or_else(PoisonError::into_inner).insert(root_id.to_owned(), owner.to_owned());
        Ok(owner == tenant)
    }
}

#[async_trait]
impl KeyProvider for AwsKms {
    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    /// `CreateKey` (symmetric, encrypt/decrypt, tagged with the tenant); returns the key ARN.
    async fn create_root(&self, tenant: &str) -> Result<String, KeyError> {
        let tag = Tag::builder()
            .tag_key(TENANT_TAG)
            .tag_value(tenant)
            .build()
            .map_err(|e| KeyError::Unavailable(format!("KMS CreateKey: building the tenant tag: {e}")))?;
        let out = self
            .client
            .create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .description(format!("blobseal root key for tenant {tenant}"))
            .tags(tag)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "CreateKey", tenant))?;
        let arn = out
            .key_metadata()
            .and_then(|m| m.arn())
            .filter(|a| !a.is_empty() && a.len() <= 255 && a.is_ascii())
            .ok_or_else(|| KeyError::Unavailable("KMS CreateKey answered without a usable key ARN".into()))?;
        self.owners.write().unwrap_or_else(PoisonError::into_inner).insert(arn.to_owned(), tenant.to_owned());
        Ok(arn.to_owned())
    }

    /// `Encrypt` under `root_id` with the context of `cx`; returns the `CiphertextBlob`.
    async fn wrap(&self, root_id: &str, key: &DataKey, cx: &WrapContext<'_>) -> Result<Vec<u8>, KeyError> {
        if !self.owned_by(root_id, cx.tenant).await? {
            return Err(KeyError::UnknownKey(root_id.to_owned()));
        }
        // The SDK copies the plaintext into its request body and does not zeroize it; that copy is
        // short-lived and never logged (the SDK redacts `Plaintext` in Debug).
        let out = self
            .client
            .encrypt()
            .key_id(root_id)
            .plaintext(Blob::new(key.as_bytes().to_vec()))
            .encryption_context(TENANT_TAG, cx.tenant)
            .encryption_context(KEY_ID_CONTEXT, cx.key_id)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "Encrypt", root_id))?;
        match out.ciphertext_blob {
            Some(blob) if !blob.as_ref().is_empty() => Ok(blob.into_inner()),
            _ => Err(KeyError::Unavailable("KMS Encrypt answered without a ciphertext".into())),
        }
    }

    /// `Decrypt` naming `root_id` with the context of `cx`; the plaintext must be exactly 32 bytes.
    async fn unwrap(&self, root_id: &str, blob: &[u8], cx: &WrapContext<'_>) -> Result<DataKey, KeyError> {
        if !self.owned_by(root_id, cx.tenant).await? {
            return Err(KeyError::Unwrap);
        }
        let mut out = self
            .client
            .decrypt()
            .key_id(root_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(TENANT_TAG, cx.tenant)
            .encryption_context(KEY_ID_CONTEXT, cx.key_id)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "Decrypt", root_id))?;
        let plain = Zeroizing::new(out.plaintext.take().map(Blob::into_inner).unwrap_or_default());
        // Wrong length means this blob was not made by `wrap`: treat it like a failed authentication.
        DataKey::from_slice(&plain)
    }

    /// `DisableKey`, then `ScheduleKeyDeletion`. Idempotent: a root already pending deletion is not
    /// touched again (real KMS refuses both calls for it) and its scheduled date is reported.
    async fn destroy(&self, tenant: &str, root_id: &str) -> Result<Destruction, KeyError> {
        if !self.owned_by(root_id, tenant).await? {
            return Err(KeyError::UnknownKey(format!("{root_id} (not a root key of tenant {tenant})")));
        }
        // Looked up first so a retried destroy (after a crash between the two calls, or a second
        // shred request) reports the deletion already scheduled instead of failing.
        let described = self
            .client
            .describe_key()
            .key_id(root_id)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "DescribeKey", root_id))?;
        let meta = described.key_metadata();
        if meta.and_then(|m| m.key_state()) == Some(&KeyState::PendingDeletion) {
            let when = rfc3339(meta.and_then(|m| m.deletion_date()));
            return Ok(Destruction {
                root_id: root_id.to_owned(),
                detail: format!("already disabled; deletion scheduled for {when}"),
            });
        }
        // DisableKey and ScheduleKeyDeletion work only in the key's own account, where the bare key
        // id is as good as the ARN; moto 5.2 fails both with a 500 when given an ARN.
        let key_id = meta.map(|m| m.key_id()).filter(|k| !k.is_empty()).unwrap_or(root_id);
        let disabled_at = now_rfc3339();
        self.client.disable_key().key_id(key_id).send().await.map_err(|e| map_sdk_err(e, "DisableKey", root_id))?;
        let out = self
            .client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(self.deletion_window_days)
            .send()
            .await
            .map_err(|e| map_sdk_err(e, "ScheduleKeyDeletion", root_id))?;
        Ok(Destruction {
            root_id: root_id.to_owned(),
            detail: format!("disabled {disabled_at}; deletion scheduled for {}", rfc3339(out.deletion_date())),
        })
    }
}

/// An SDK timestamp as RFC 3339 (`2026-05-01T12:00:00Z`).
fn rfc3339(date: Option<&DateTime>) -> String {
    date.and_then(|d| d.fmt(DateTimeFormat::DateTime).ok()).unwrap_or_else(|| "an unreported date".to_owned())
}

fn now_rfc3339() -> String {
    let now = DateTime::from(std::time::SystemTime::now());
    // Formatting the current time cannot realistically fail; fall back to `time` just in case.
    now.fmt(DateTimeFormat::DateTime)
        .or_else(|_| time::OffsetDateTime::now_utc().format(&Rfc3339))
        .unwrap_or_else(|_| "now".to_owned())
}

/// What kind of failure the SDK reported, before looking at error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No answer in time (connect, attempt or operation timeout).
    Timeout,
    /// The request never got an HTTP answer (connection refused, DNS, TLS).
    Dispatch,
    /// KMS answered with an error (or an answer the SDK could not parse).
    Response,
    /// The request could not be built or signed.
    Construction,
}

/// Converts any KMS SDK error. `key` names the KMS key (or tenant, for `CreateKey`) in messages.
fn map_sdk_err<E>(err: SdkError<E, HttpResponse>, op: &'static str, key: &str) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = match &err {
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(_) => Failure::Dispatch,
        SdkError::ConstructionFailure(_) => Failure::Construction,
        _ => Failure::Response,
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    // Transport errors carry no request body or credentials: their text is safe and useful.
    let detail = match failure {
        Failure::Dispatch | Failure::Construction => {
            let mut d = format!("{}", DisplayErrorContext(&err));
            if let Some((cut, _)) = d.char_indices().nth(MAX_DETAIL) {
                d.truncate(cut);
            }
            Some(d)
        }
        Failure::Timeout | Failure::Response => None,
    };
    classify(op, key, failure, err.code(), status, detail.as_deref())
}

/// The error-mapping table (see the module doc). Pure, so it is tested without a server.
fn classify(
    op: &str,
    key: &str,
    failure: Failure,
    code: Option<&str>,
    status: Option<u16>,
    detail: Option<&str>,
) -> KeyError {
    match (failure, code) {
        (Failure::Timeout, _) => KeyError::Unavailable(format!("KMS {op} timed out")),
        (Failure::Dispatch, _) => {
            KeyError::Unavailable(format!("KMS {op}: cannot reach KMS: {}", detail.unwrap_or("no detail")))
        }
        (Failure::Construction, _) => {
            KeyError::Unavailable(format!("KMS {op}: request not sent: {}", detail.unwrap_or("no detail")))
        }
        (Failure::Response, Some("InvalidCiphertextException" | "IncorrectKeyException")) => KeyError::Unwrap,
        (Failure::Response, Some("NotFoundException")) => {
            KeyError::Destroyed(format!("KMS key {key} does not exist (deleted or never created)"))
        }
        (Failure::Response, Some("KMSInvalidStateException" | "DisabledException")) => {
            KeyError::Destroyed(format!("KMS key {key} is disabled or scheduled for deletion"))
        }
        (Failure::Response, Some("InvalidArnException" | "InvalidKeyUsageException")) => {
            KeyError::UnknownKey(key.to_owned())
        }
        (Failure::Response, code) => {
            let code = code.unwrap_or("no error code");
            match status {
                Some(s) => KeyError::Unavailable(format!("KMS {op}: {code} (HTTP {s})")),
                None => KeyError::Unavailable(format!("KMS {op}: {code}")),
            }
        }
    }
}

#[cfg(test)]
#[path = "aws_kms_tests.rs"]
mod tests;
