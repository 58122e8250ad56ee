//! Who is calling and what they may do: Shared Key (either account key, `x-ms-date` within 15 minutes)
//! or a SAS (service or account) checked per operation. Every failure is a 403: rclone retries a 401.
//! SharedKeyLite, bearer tokens and user-delegation SAS are refused with a message that says so.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::collections::HashMap;
use std::net::IpAddr;

use http::{HeaderMap, Method};
use time::OffsetDateTime;

use super::error::AzureError;
use super::headers::{parse_http_date, text};
use super::router::{Op, Query, Target};
use super::sas::{self, Level, SasGrant, SasRequest, SasScope};
use super::shared_key::{self, HeaderOrder};

/// How far `x-ms-date` may be from now (Azure's limit).
const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// One Azure storage account: the tenant it belongs to and its keys (decoded).
#[derive(Clone)]
pub struct Account {
    pub tenant: String,
    pub keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("tenant", &self.tenant).field("keys", &self.keys.len()).finish()
    }
}

/// Account name → account.
pub type Accounts = HashMap<String, Account>;

/// How the caller proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Shared Key: the account's owner, allowed everything.
    Key,
    Sas(SasGrant),
}

/// The request as authentication sees it.
pub struct Presented<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The path as sent (still percent-encoded): Shared Key signs it so.
    pub raw_path: &'a str,
    pub query: &'a Query,
    pub target: &'a Target,
    pub peer: IpAddr,
    pub https: bool,
    pub now: OffsetDateTime,
}

/// Authenticates the request for its account; returns the account and how the caller proved itself.
pub fn authenticate<'a>(accounts: &'a Accounts, r: &Presented<'_>) -> Result<(&'a Account, Caller), AzureError> {
    let authorization = text(r.headers, "authorization");
    // An unknown account fails like a wrong key: no way to probe which accounts exist.
    let account = accounts.get(&r.target.account);
    if let Some(auth) = authorization {
        let account = account.ok_or_else(|| AzureError::auth("Signature did not match."))?;
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        match scheme {
            "SharedKey" => {}
            "SharedKeyLite" => {
                return Err(AzureError::auth("SharedKeyLite is not supported by blobseal; use SharedKey."))
            }
            "Bearer" => return Err(AzureError::auth(
                "Microsoft Entra ID (bearer token) authorization is not supported by blobseal; use SharedKey or a SAS.",
            )),
            _ => return Err(AzureError::auth("Unknown authorization scheme.")),
        }
        let (name, signature) = rest.trim().split_once(':').unwrap_or(("", ""));
        if name != r.target.account {
            return Err(AzureError::auth("The account in the Authorization header is not the one addressed."));
        }
        check_date(r.headers, r.now)?;
        let method = r.method.as_str();
        let ok = [HeaderOrder::Ordinal, HeaderOrder::Service].into_iter().any(|order| {
            let sts = shared_key::string_to_sign(method, r.headers, name, r.raw_path, r.query, order);
            shared_key::verify(&account.keys, &sts, signature)
        });
        if !ok {
            return Err(AzureError::auth("Signature did not match."));
        }
        return Ok((account, Caller::Key));
    }
    if sas::present(r.query) {
        let account = account.ok_or_else(|| AzureError::auth("Signature did not match."))?;
        let req = SasRequest {
            account: &r.target.account,
            keys: &account.keys,
            now: r.now,
            peer: r.peer,
            https: r.https,
            container: r.target.container.as_deref(),
            blob: r.target.blob.as_deref(),
        };
        return Ok((account, Caller::Sas(sas::verify(r.query, &req)?)));
    }
    Err(AzureError::new(
        http::StatusCode::FORBIDDEN,
        "NoAuthenticationInformation",
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    ))
}

fn check_date(headers: &HeaderMap, now: OffsetDateTime) -> Result<(), AzureError> {
    let date = text(headers, "x-ms-date")
        .or_else(|| text(headers, "date"))
        .ok_or_else(|| AzureError::auth("x-ms-date or Date is required."))?;
    let date = parse_http_date(date).ok_or_else(|| AzureError::auth("x-ms-date is not an RFC 1123 date."))?;
    if (now - date).abs() > MAX_CLOCK_SKEW {
        return Err(AzureError::auth("Request date header too old or too far in the future (15 minutes)."));
    }
    Ok(())
}

/// What a write may do under the caller's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create or overwrite.
    Any,
    /// A SAS with `c` but not `w`: only create blobs that do not exist yet.
    CreateOnly,
}

/// Whether `caller` may run `op` on `target`; for writes, how.
pub fn authorize(caller: &Caller, op: Op, target: &Target) -> Result<WriteMode, AzureError> {
    let Caller::Sas(grant) = caller else { return Ok(WriteMode::Any) };
    let (c, b) = (target.container.as_deref(), target.blob.as_deref());
    let need = |perms: &str, level: Level| {
        if grant.allows(perms, level, c, b) {
            Ok(WriteMode::Any)
        } else {
            Err(AzureError::permission(
                "This request is not authorized to perform this operation using this permission.",
            ))
        }
    };
    match op {
        Op::AccountInfo => Ok(WriteMode::Any),
        Op::ListContainers => need("l", Level::Service),
        // A service SAS for a container covers its blobs and their listing, never the container itself.
        Op::CreateContainer | Op::DeleteContainer | Op::ContainerProperties | Op::SetContainerMetadata
            if !matches!(grant.scope, SasScope::Account { .. }) =>
        {
            Err(AzureError::permission(
                "This request is not authorized to perform this operation using this resource type.",
            ))
        }
        Op::CreateContainer => need("cw", Level::Container),
        Op::DeleteContainer => need("d", Level::Container),
        Op::ContainerProperties => need("r", Level::Container),
        Op::SetContainerMetadata => need("w", Level::Container),
        Op::ListBlobs => need("l", Level::Container),
        Op::GetBlob | Op::BlobProperties | Op::GetBlockList => need("r", Level::Object),
        Op::DeleteBlob => need("d", Level::Object),
        Op::SetBlobMetadata | Op::SetBlobProperties => need("w", Level::Object),
        Op::GetTags | Op::SetTags => need("t", Level::Object),
        Op::PutBlob | Op::PutBlock | Op::PutBlockList | Op::CopyBlob => {
            if grant.allows("w", Level::Object, c, b) {
                Ok(WriteMode::Any)
            } else if grant.allows("c", Level::Object, c, b) {
                Ok(WriteMode::CreateOnly)
            } else {
                need("w", Level::Object)
            }
        }
        Op::Unsupported(_) => Ok(WriteMode::Any),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let mut a = Accounts::new();
        a.insert("acct".into(), Account { tenant: "t".into(), keys: vec![vec![1; 32], vec![2; 32]] });
        a
    }

    fn signed(key: &[u8], method: &Method, path: &str, query: &Query, date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ms-date", date.parse().unwrap());
        h.insert("x-ms-version", "2025-01-05".parse().unwrap());
        let sts = shared_key::string_to_sign(method.as_str(), &h, "acct", path, query, HeaderOrder::Ordinal);
        h.insert("authorization", format!("SharedKey acct:{}", shared_key::sign(key, &sts)).parse().unwrap());
        h
    }

    fn present<'a>(h: &'a HeaderMap, q: &'a Query, t: &'a Target, now: OffsetDateTime) -> Presented<'a> {
        Presented {
            method: &Method::GET,
            headers: h,
            raw_path: "/acct/c",
            query: q,
            target: t,
            peer: "127.0.0.1".parse().unwrap(),
            https: false,
            now,
        }
    }

    #[test]
    fn shared_key_with_either_key_fresh_date_only() {
        let now = OffsetDateTime::now_utc();
        let date = super::super::headers::http_date(now);
        let q = Query::parse(Some("restype=container")).unwrap();
        let t = Target { account: "acct".into(), container: Some("c".into()), blob: None };
        let a = accounts();
        for key in [[1u8; 32], [2u8; 32]] {
            let h = signed(&key, &Method::GET, "/acct/c", &q, &date);
            assert_eq!(authenticate(&a, &present(&h, &q, &t, now)).unwrap().1, Caller::Key);
        }
        let h = signed(&[3u8; 32], &Method::GET, "/acct/c", &q, &date);
        assert_eq!(authenticate(&a, &present(&h, &q, &t, now)).unwrap_err().code, "AuthenticationFailed");
        let h = signed(&[1u8; 32], &Method::GET, "/acct/c", &q, &date);
        let later = now + time::Duration::minutes(16);
        assert_eq!(authenticate(&a, &present(&h, &q, &t, later)).unwrap_err().status, http::StatusCode::FORBIDDEN);
        let other = Target { account: "nope".into(), ..t.clone() };
        assert!(authenticate(&a, &present(&h, &q, &other, now)).is_err());
        let none = HeaderMap::new();
        assert_eq!(authenticate(&a, &present(&none, &q, &t, now)).unwrap_err().status, http::StatusCode::FORBIDDEN);
        let mut lite = HeaderMap::new();
        lite.insert("authorization", "SharedKeyLite acct:abc".parse().unwrap());
        assert!(authenticate(&a, &present(&lite, &q, &t, now)).unwrap_err().message.contains("SharedKeyLite"));
    }

    /// Known answers computed by the official Python SDK (azure-storage-blob 12.28: its
    /// SharedKeyCredentialPolicy and generate_*_sas) with Azurite's published development key.
    const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn dev_accounts() -> Accounts {
        let key = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, DEV_KEY).unwrap();
        [("devstoreaccount1".to_owned(), Account { tenant: "t".into(), keys: vec![key] })].into()
    }

    #[test]
    fn shared_key_known_answer_from_the_python_sdk() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ms-date", "Sat, 05 Dec 2026 12:00:00 GMT"),
            ("x-ms-version", "2025-01-05"),
            ("content-length", "11"),
            ("content-type", "application/octet-stream"),
            ("x-ms-meta-data_subject", "ann"),
            ("x-ms-client-request-id", "abc"),
            ("authorization", "SharedKey devstoreaccount1:12Jf7/zc3T4olOiTtsNJaoz/liZVhx2menxpHSSHnxE="),
        ] {
            h.insert(http::HeaderName::from_static(k), v.parse().unwrap());
        }
        let q = Query::parse(Some("comp=block&blockid=QUFBQQ%3D%3D")).unwrap();
        let t = Target {
            account: "devstoreaccount1".into(),
            container: Some("cont".into()),
            blob: Some("dir/a b.txt".into()),
        };
        let now = OffsetDateTime::from_unix_timestamp(1_796_472_000).unwrap(); // 2026-12-05T12:00:00Z
        let p = Presented {
            method: &Method::PUT,
            headers: &h,
            raw_path: "/devstoreaccount1/cont/dir/a%20b.txt",
            query: &q,
            target: &t,
            peer: "127.0.0.1".parse().unwrap(),
            https: false,
            now,
        };
        assert_eq!(authenticate(&dev_accounts(), &p).unwrap().1, Caller::Key);
        // One header changed after signing: refused.
        let mut changed = h.clone();
        changed.insert("x-ms-meta-data_subject", "bob".parse().unwrap());
        let p = Presented { headers: &changed, ..p };
        assert!(authenticate(&dev_accounts(), &p).is_err());
    }

    #[test]
    fn sas_known_answers_from_the_python_sdk() {
        let now = OffsetDateTime::from_unix_timestamp(1_796_472_000).unwrap();
        let h = HeaderMap::new();
        let blob = Target {
            account: "devstoreaccount1".into(),
            container: Some("cont".into()),
            blob: Some("dir/a b.txt".into()),
        };
        let cont = Target { blob: None, ..blob.clone() };
        let cases = [
            ("se=2027-01-01T00%3A00%3A00Z&sp=r&sv=2026-10-06&sr=b&sig=1uKAxmWbu8iN5heVWPjIcWQfLGVfakBrgOMU1ZVanoE%3D", &blob, Op::GetBlob),
            ("st=2026-01-01T00%3A00%3A00Z&se=2027-01-01T00%3A00%3A00Z&sp=rl&sip=127.0.0.1&spr=https%2Chttp&sv=2026-10-06&sr=c&sig=0QxUcy38aZhM85d6rhEig8xyjpkgCuniZC257GnBJEU%3D", &cont, Op::ListBlobs),
            ("se=2027-01-01T00%3A00%3A00Z&sp=rwl&sv=2026-10-06&ss=b&srt=sco&sig=H9PVHJAirGv7i07tnTjEXGIOtBt9LlbRIQ%2B6F9mjsi4%3D", &blob, Op::PutBlob),
            // sv=2016-05-31 (before 2018-11-09: no sr and no snapshot in the string to sign), from the JS SDK
            // (@azure/storage-blob 12, generate{Blob,Account}SASQueryParameters with version set).
            ("sv=2016-05-31&se=2027-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=4l6NZC3pyiRE3WnikrMnYGqMQ2hPmGSyAqjA3a8DQRQ%3D", &blob, Op::GetBlob),
            ("sv=2016-05-31&se=2027-01-01T00%3A00%3A00Z&sr=c&sp=rl&sig=jmogjn%2BIlgf%2Fpuc%2FPE%2BDjJ6upbaNBTEiw8uBIuo1ZAQ%3D", &cont, Op::ListBlobs),
            ("sv=2016-05-31&ss=b&srt=sco&se=2027-01-01T00%3A00%3A00Z&sp=rwl&sig=oxxLoxvwRLRKQs7HjUtuWrgNi2%2Fz%2BtscerLioajJTDY%3D", &blob, Op::PutBlob),
        ];
        for (raw, target, op) in cases {
            let q = Query::parse(Some(raw)).unwrap();
            let (_, caller) = authenticate(&dev_accounts(), &present(&h, &q, target, now)).unwrap();
            assert_eq!(authorize(&caller, op, target).unwrap(), WriteMode::Any, "{raw}");
            // The same SAS with one character of its permissions changed fails its signature.
            let forged = Query::parse(Some(&raw.replace("sp=r", "sp=w"))).unwrap();
            assert!(authenticate(&dev_accounts(), &present(&h, &forged, target, now)).is_err());
        }
        // A parameter given twice is refused even when the first copy is the signed one.
        for extra in ["&sp=rwd", "&sig=AAAA", "&se=2099-01-01", "&SP=r"] {
            let q = Query::parse(Some(&format!("{}{extra}", cases[0].0))).unwrap();
            let err = authenticate(&dev_accounts(), &present(&h, &q, &blob, now)).unwrap_err();
            assert!(err.message.contains("more than once"), "{extra}: {}", err.message);
        }
        // Versions before 2015-04-05 are refused.
        let q = Query::parse(Some(&cases[3].0.replace("2016-05-31", "2014-02-14"))).unwrap();
        assert!(authenticate(&dev_accounts(), &present(&h, &q, &blob, now))
            .unwrap_err()
            .message
            .contains("not supported"));
        // The blob SAS grants nothing on another blob, the container SAS nothing from another address.
        let other = Target { blob: Some("other".into()), ..blob.clone() };
        let q = Query::parse(Some(cases[0].0)).unwrap();
        assert!(authenticate(&dev_accounts(), &present(&h, &q, &other, now)).is_err());
        let q = Query::parse(Some(cases[1].0)).unwrap();
        let from_elsewhere = Presented { peer: "10.1.2.3".parse().unwrap(), ..present(&h, &q, &cont, now) };
        assert_eq!(authenticate(&dev_accounts(), &from_elsewhere).unwrap_err().code, "AuthorizationSourceIPMismatch");
    }

    #[test]
    fn sas_permissions_per_operation() {
        let now = OffsetDateTime::now_utc();
        let se = (now + time::Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
        let se = se.split('.').next().unwrap().trim_end_matches('Z').to_owned() + "Z";
        // A service SAS for container c, read + list, signed as the SDKs sign it.
        let fields = ["rl", "", &se, "/blob/acct/c", "", "", "", "2025-01-05", "c", "", "", "", "", "", "", ""];
        let sig = shared_key::sign(&[1u8; 32], &fields.join("\n"));
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let raw = format!("sv=2025-01-05&se={}&sr=c&sp=rl&sig={}", enc(&se), enc(&sig));
        let q = Query::parse(Some(&raw)).unwrap();
        let t = Target { account: "acct".into(), container: Some("c".into()), blob: Some("x".into()) };
        let h = HeaderMap::new();
        let (_, caller) = authenticate(&accounts(), &present(&h, &q, &t, now)).unwrap();
        assert_eq!(authorize(&caller, Op::GetBlob, &t).unwrap(), WriteMode::Any);
        assert_eq!(authorize(&caller, Op::PutBlob, &t).unwrap_err().code, "AuthorizationPermissionMismatch");
        assert!(authorize(&caller, Op::DeleteBlob, &t).is_err());
        let cont = Target { blob: None, ..t.clone() };
        assert_eq!(authorize(&caller, Op::ListBlobs, &cont).unwrap(), WriteMode::Any);
        assert!(
            authorize(&caller, Op::ContainerProperties, &cont).is_err(),
            "a container SAS never covers the container"
        );
        let other = Target { container: Some("d".into()), ..t.clone() };
        assert!(authenticate(&accounts(), &present(&h, &q, &other, now)).is_err(), "signed for another container");
        let expired = now + time::Duration::hours(2);
        assert_eq!(authenticate(&accounts(), &present(&h, &q, &t, expired)).unwrap_err().code, "AuthenticationFailed");
    }
}
