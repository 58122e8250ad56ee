//! Shared access signatures: service SAS (blob and container) and account SAS, parsed from the query and
//! checked as pure functions (signature, start, expiry, IP, protocol), then matched against each operation.
//!
//! Hand-written for the same reason as `shared_key.rs`. Supported versions: `sv` 2015-04-05 and later.
//! The string to sign of a service SAS gained `sr` and the snapshot time in 2018-11-09 and, like the
//! account SAS's, the encryption scope in 2020-12-06. User-delegation SAS (`skoid`) and SAS bound to a
//! stored access policy (`si`) are refused, and so is a SAS whose parameters appear more than once
//! (Azure refuses them too; taking the first would let the signed and the enforced value differ).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::net::IpAddr;

use time::format_description::well_known::Iso8601;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::error::AzureError;
use super::router::Query;
use super::shared_key;

/// Oldest SAS version accepted: the first whose string to sign carries `sip` and `spr`.
const MIN_VERSION: &str = "2015-04-05";
/// From this version a service SAS's string to sign carries `sr` and the snapshot time.
const RESOURCE_VERSION: &str = "2018-11-09";
/// From this version the string to sign carries the encryption scope.
const SCOPE_VERSION: &str = "2020-12-06";

/// What a service SAS is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SasScope {
    /// An account SAS: `ss` (services) and `srt` (resource types: s, c, o).
    Account { resource_types: String },
    /// `sr=c`: one container and its blobs.
    Container { container: String },
    /// `sr=b`: one blob.
    Blob { container: String, blob: String },
}

/// A verified SAS: what it lets its bearer do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasGrant {
    pub permissions: String,
    pub scope: SasScope,
    /// Response header overrides (`rscc`, `rscd`, `rsce`, `rscl`, `rsct`) for reads.
    pub overrides: Vec<(&'static str, String)>,
}

/// Where the request is going: the level an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Service,
    Container,
    Object,
}

impl SasGrant {
    /// Whether the SAS grants one of `permissions` at `level` on `container`/`blob`.
    pub fn allows(&self, permissions: &str, level: Level, container: Option<&str>, blob: Option<&str>) -> bool {
        let in_scope = match (&self.scope, level) {
            (SasScope::Account { resource_types }, Level::Service) => resource_types.contains('s'),
            (SasScope::Account { resource_types }, Level::Container) => resource_types.contains('c'),
            (SasScope::Account { resource_types }, Level::Object) => resource_types.contains('o'),
            (SasScope::Container { container: c }, Level::Container | Level::Object) => Some(c.as_str()) == container,
            (SasScope::Blob { container: c, blob: b }, Level::Object) => {
                Some(c.as_str()) == container && Some(b.as_str()) == blob
            }
            _ => false,
        };
        in_scope && (permissions.is_empty() || permissions.chars().any(|p| self.permissions.contains(p)))
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t);
    }
    // `2026-12-05T12:00Z` (no seconds) and `2026-12-05` (a date) are valid SAS times too.
    let text = text.strip_suffix('Z').unwrap_or(text);
    let formats: [&[time::format_description::FormatItem<'_>]; 2] = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ];
    for f in formats {
        if let Ok(t) = PrimitiveDateTime::parse(text, f) {
            return Some(t.assume_utc());
        }
    }
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

fn ip_allowed(range: &str, peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    match (lo.trim().parse::<IpAddr>(), hi.trim().parse::<IpAddr>()) {
        (Ok(IpAddr::V4(lo)), Ok(IpAddr::V4(hi))) => matches!(peer, IpAddr::V4(p) if lo <= p && p <= hi),
        (Ok(IpAddr::V6(lo)), Ok(IpAddr::V6(hi))) => matches!(peer, IpAddr::V6(p) if lo <= p && p <= hi),
        _ => false,
    }
}

/// The query parameters a SAS is made of.
const SAS_PARAMETERS: [&str; 19] = [
    "sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sr", "sig", "si", "ses", "snapshot", "skoid", "rscc", "rscd",
    "rsce", "rscl", "rsct",
];

/// Whether the query carries a SAS at all.
pub fn present(q: &Query) -> bool {
    q.get("sig").is_some()
}

/// The request as a SAS check sees it.
pub struct SasRequest<'a> {
    pub account: &'a str,
    pub keys: &'a [Vec<u8>],
    pub now: OffsetDateTime,
    pub peer: IpAddr,
    /// Whether the request arrived over TLS.
    pub https: bool,
    /// What the request addresses: a service SAS is checked against it.
    pub container: Option<&'a str>,
    pub blob: Option<&'a str>,
}

/// Verifies the SAS in `q` for `req.account` and returns what it grants.
pub fn verify(q: &Query, req: &SasRequest<'_>) -> Result<SasGrant, AzureError> {
    let get = |name: &str| q.get(name).unwrap_or("");
    if let Some(twice) = SAS_PARAMETERS.iter().find(|p| q.count(p) > 1) {
        return Err(AzureError::auth(format!("SAS parameter {twice} appears more than once.")));
    }
    if q.get("skoid").is_some() {
        return Err(AzureError::auth(
            "User delegation SAS is not supported by blobseal; use a service or account SAS.",
        ));
    }
    if q.get("si").is_some_and(|s| !s.is_empty()) {
        return Err(AzureError::auth("SAS bound to a stored access policy (si) is not supported by blobseal."));
    }
    let version = get("sv");
    if version.len() != 10 || version < MIN_VERSION {
        return Err(AzureError::auth(format!(
            "SAS version sv={version:?} is not supported (need {MIN_VERSION} or later)."
        )));
    }
    let with_scope = version >= SCOPE_VERSION;
    let account_sas = q.get("ss").is_some() || q.get("srt").is_some();
    let text = if account_sas {
        let mut t =
            [req.account, get("sp"), get("ss"), get("srt"), get("st"), get("se"), get("sip"), get("spr"), version]
                .join("\n");
        t.push('\n');
        if with_scope {
            t.push_str(get("ses"));
            t.push('\n');
        }
        t
    } else {
        let sr = get("sr");
        let path = resource_path(req, sr)?;
        let resource = format!("/blob/{}/{path}", req.account);
        let mut fields = vec![get("sp"), get("st"), get("se"), &resource, get("si"), get("sip"), get("spr"), version];
        if version >= RESOURCE_VERSION {
            fields.extend([sr, get("snapshot")]);
        }
        if with_scope {
            fields.push(get("ses"));
        }
        fields.extend([get("rscc"), get("rscd"), get("rsce"), get("rscl"), get("rsct")]);
        fields.join("\n")
    };
    if !shared_key::verify(req.keys, &text, get("sig")) {
        return Err(AzureError::auth("Signature did not match."));
    }
    let expiry = parse_time(get("se")).ok_or_else(|| AzureError::auth("SAS expiry (se) missing or malformed."))?;
    if req.now >= expiry {
        return Err(AzureError::auth("Signed expiry time has passed."));
    }
    if let Some(start) = q.get("st").filter(|s| !s.is_empty()) {
        let start = parse_time(start).ok_or_else(|| AzureError::auth("SAS start (st) malformed."))?;
        if req.now < start {
            return Err(AzureError::auth("Signed start time is in the future."));
        }
    }
    if let Some(range) = q.get("sip").filter(|s| !s.is_empty()) {
        if !ip_allowed(range, req.peer) {
            return Err(AzureError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationSourceIPMismatch",
                "This request is not authorized to perform this operation using this source IP.",
            ));
        }
    }
    match q.get("spr").unwrap_or("") {
        "" | "https,http" | "http,https" => {}
        "https" if req.https => {}
        _ => {
            return Err(AzureError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationProtocolMismatch",
                "This request is not authorized to perform this operation using this protocol.",
            ))
        }
    }
    let scope = if account_sas {
        if !get("ss").contains('b') {
            return Err(AzureError::new(
                http::StatusCode::FORBIDDEN,
                "AuthorizationServiceMismatch",
                "This request is not authorized to perform this operation using this service.",
            ));
        }
        SasScope::Account { resource_types: get("srt").to_owned() }
    } else {
        let path = resource_path(req, get("sr"))?;
        match path.split_once('/') {
            Some((c, b)) => SasScope::Blob { container: c.to_owned(), blob: b.to_owned() },
            None => SasScope::Container { container: path },
        }
    };
    let overrides = [
        ("cache-control", "rscc"),
        ("content-disposition", "rscd"),
        ("content-encoding", "rsce"),
        ("content-language", "rscl"),
        ("content-type", "rsct"),
    ]
    .into_iter()
    .filter_map(|(h, p)| q.get(p).filter(|v| !v.is_empty()).map(|v| (h, v.to_owned())))
    .collect();
    Ok(SasGrant { permissions: get("sp").to_owned(), scope, overrides })
}

/// The resource a service SAS names (`container` or `container/blob`): `sr` says which, the request
/// says what (a SAS made for another resource then fails its signature).
fn resource_path(req: &SasRequest<'_>, sr: &str) -> Result<String, AzureError> {
    match (sr, req.container, req.blob) {
        ("c", Some(c), _) => Ok(c.to_owned()),
        ("b", Some(c), Some(b)) => Ok(format!("{c}/{b}")),
        ("c" | "b", _, _) => Err(AzureError::auth("The SAS resource does not match the request.")),
        (other, _, _) => Err(AzureError::auth(format!("SAS resource sr={other:?} is not supported by blobseal."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_sas_form() {
        assert!(parse_time("2026-12-05T12:00:00Z").is_some());
        assert!(parse_time("2026-12-05T12:00Z").is_some());
        assert!(parse_time("2026-12-05T12:00:00.1234567Z").is_some());
        assert!(parse_time("2026-12-05").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn ip_ranges() {
        let p: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(ip_allowed("10.0.0.5", p));
        assert!(ip_allowed("10.0.0.1-10.0.0.9", p));
        assert!(!ip_allowed("10.0.0.6-10.0.0.9", p));
        assert!(ip_allowed("10.0.0.5", "::ffff:10.0.0.5".parse().unwrap()));
        assert!(!ip_allowed("garbage", p));
    }

    #[test]
    fn grants_follow_scope_and_permissions() {
        let g = SasGrant {
            permissions: "rl".into(),
            scope: SasScope::Container { container: "c".into() },
            overrides: vec![],
        };
        assert!(g.allows("r", Level::Object, Some("c"), Some("x")));
        assert!(g.allows("l", Level::Container, Some("c"), None));
        assert!(!g.allows("w", Level::Object, Some("c"), Some("x")));
        assert!(!g.allows("r", Level::Object, Some("other"), Some("x")));
        assert!(!g.allows("l", Level::Service, None, None));
        let b = SasGrant {
            permissions: "r".into(),
            scope: SasScope::Blob { container: "c".into(), blob: "x".into() },
            overrides: vec![],
        };
        assert!(b.allows("r", Level::Object, Some("c"), Some("x")));
        assert!(!b.allows("r", Level::Object, Some("c"), Some("y")));
        assert!(!b.allows("r", Level::Container, Some("c"), None));
        let a = SasGrant {
            permissions: "rwl".into(),
            scope: SasScope::Account { resource_types: "co".into() },
            overrides: vec![],
        };
        assert!(a.allows("w", Level::Object, Some("c"), Some("x")));
        assert!(!a.allows("l", Level::Service, None, None));
    }
}
