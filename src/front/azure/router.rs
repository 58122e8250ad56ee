//! Which account, container and blob a request addresses, and which operation it asks for.
//!
//! Addressing is path-style (`/<account>/<container>/<blob>`, as Azurite serves it) or, when a domain is
//! configured, host-style (`<account>.blob.<domain>`, path `/<container>/<blob>`). The operation follows
//! from the method and the `restype` / `comp` query parameters, as in Azure's REST reference.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use super::error::AzureError;

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub account: String,
    pub container: Option<String>,
    pub blob: Option<String>,
}

/// The request's query, decoded (`+` stays `+`: SAS signatures are base64).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, AzureError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let decode = |s: &str| {
                percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| {
                    AzureError::bad_request("InvalidQueryParameterValue", "A query parameter is not valid UTF-8.")
                })
            };
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Self { pairs })
    }

    /// The first value of `name` (names compare case-insensitively, as Azure does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// How often `name` appears.
    pub fn count(&self, name: &str) -> usize {
        self.pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).count()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Splits the request into account, container and blob.
pub fn target(host: Option<&str>, path: &str, domain: Option<&str>) -> Result<Target, AzureError> {
    let bad =
        || AzureError::bad_request("InvalidUri", "The requested URI does not represent any resource on the server.");
    let host_account = match (domain, host) {
        (Some(domain), Some(host)) => {
            let host = host.to_ascii_lowercase();
            let name = host.rsplit_once(':').map_or(host.as_str(), |(name, _)| name);
            name.strip_suffix(&domain.to_ascii_lowercase())
                .and_then(|a| a.strip_suffix(".blob."))
                .filter(|a| !a.is_empty() && !a.contains('.'))
                .map(str::to_owned)
        }
        _ => None,
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    let (account, rest) = match host_account {
        Some(a) => (a, rest),
        None => {
            let (a, rest) = rest.split_once('/').unwrap_or((rest, ""));
            if a.is_empty() {
                return Err(bad());
            }
            (a.to_owned(), rest)
        }
    };
    let (container, blob) = match rest.split_once('/') {
        Some((c, b)) => (c, b),
        None => (rest, ""),
    };
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| AzureError::bad_request("InvalidUri", "The blob name is not valid UTF-8."))
    };
    let container = (!container.is_empty()).then(|| decode(container)).transpose()?;
    // Azure stores `\` in a blob name as `/` (so `a\b` and `a/b` are one blob).
    let blob = (!blob.is_empty()).then(|| decode(blob).map(|b| b.replace('\\', "/"))).transpose()?;
    if container.is_none() && blob.is_some() {
        return Err(bad());
    }
    Ok(Target { account, container, blob })
}

/// The operations of the front end. `Unsupported` names what was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListContainers,
    AccountInfo,
    CreateContainer,
    DeleteContainer,
    ContainerProperties,
    SetContainerMetadata,
    ListBlobs,
    PutBlob,
    CopyBlob,
    GetBlob,
    BlobProperties,
    DeleteBlob,
    SetBlobMetadata,
    SetBlobProperties,
    PutBlock,
    PutBlockList,
    GetBlockList,
    GetTags,
    SetTags,
    Unsupported(&'static str),
}

impl Op {
    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Op::ListContainers => "ListContainers",
            Op::AccountInfo => "GetAccountInformation",
            Op::CreateContainer => "CreateContainer",
            Op::DeleteContainer => "DeleteContainer",
            Op::ContainerProperties => "GetContainerProperties",
            Op::SetContainerMetadata => "SetContainerMetadata",
            Op::ListBlobs => "ListBlobs",
            Op::PutBlob => "PutBlob",
            Op::CopyBlob => "CopyBlob",
            Op::GetBlob => "GetBlob",
            Op::BlobProperties => "GetBlobProperties",
            Op::DeleteBlob => "DeleteBlob",
            Op::SetBlobMetadata => "SetBlobMetadata",
            Op::SetBlobProperties => "SetBlobProperties",
            Op::PutBlock => "PutBlock",
            Op::PutBlockList => "PutBlockList",
            Op::GetBlockList => "GetBlockList",
            Op::GetTags => "GetBlobTags",
            Op::SetTags => "SetBlobTags",
            Op::Unsupported(_) => "Unsupported",
        }
    }
}

/// The operation `method` + query + headers ask for on `t`.
pub fn operation(method: &Method, t: &Target, q: &Query, headers: &HeaderMap) -> Op {
    let restype = q.get("restype").map(str::to_ascii_lowercase);
    let comp = q.get("comp").map(str::to_ascii_lowercase);
    let (restype, comp) = (restype.as_deref(), comp.as_deref());
    let (get, head, put, delete) =
        (method == Method::GET, method == Method::HEAD, method == Method::PUT, method == Method::DELETE);
    if restype == Some("account") && comp == Some("properties") && (get || head) {
        return Op::AccountInfo;
    }
    if q.get("snapshot").is_some() || q.get("versionid").is_some() {
        return Op::Unsupported("Snapshots and blob versions");
    }
    if let Some(unsupported) = comp.and_then(unsupported_comp) {
        return Op::Unsupported(unsupported);
    }
    match (&t.container, &t.blob) {
        (None, _) => match (comp, restype) {
            (Some("list"), _) if get => Op::ListContainers,
            (Some("properties" | "stats"), Some("service")) => Op::Unsupported("Service properties and statistics"),
            (Some("userdelegationkey"), _) => Op::Unsupported("User delegation keys"),
            _ => Op::Unsupported("This operation on the account"),
        },
        (Some(_), None) => match (restype, comp) {
            (Some("container"), None) if put => Op::CreateContainer,
            (Some("container"), None) if delete => Op::DeleteContainer,
            (Some("container"), None | Some("metadata")) if get || head => Op::ContainerProperties,
            (Some("container"), Some("metadata")) if put => Op::SetContainerMetadata,
            (Some("container"), Some("list")) if get => Op::ListBlobs,
            (Some("container"), Some("acl")) => Op::Unsupported("Container access policies"),
            _ => Op::Unsupported("This operation on a container"),
        },
        (Some(_), Some(_)) => match comp {
            None if put && headers.contains_key("x-ms-copy-source") => Op::CopyBlob,
            None if put => match headers.get("x-ms-blob-type").and_then(|v| v.to_str().ok()) {
                None => Op::PutBlob,
                Some(t) if t.eq_ignore_ascii_case("BlockBlob") => Op::PutBlob,
                Some(t) if t.eq_ignore_ascii_case("AppendBlob") => Op::Unsupported("Append blobs"),
                Some(t) if t.eq_ignore_ascii_case("PageBlob") => Op::Unsupported("Page blobs"),
                Some(_) => Op::Unsupported("This blob type"),
            },
            None if get => Op::GetBlob,
            None if head => Op::BlobProperties,
            None if delete => Op::DeleteBlob,
            Some("metadata") if put => Op::SetBlobMetadata,
            Some("metadata") if get || head => Op::BlobProperties,
            Some("properties") if put => Op::SetBlobProperties,
            Some("block") if put => Op::PutBlock,
            Some("blocklist") if put => Op::PutBlockList,
            Some("blocklist") if get => Op::GetBlockList,
            Some("tags") if get => Op::GetTags,
            Some("tags") if put => Op::SetTags,
            _ => Op::Unsupported("This operation on a blob"),
        },
    }
}

/// `comp` values of features not offered yet.
fn unsupported_comp(comp: &str) -> Option<&'static str> {
    Some(match comp {
        "lease" => "Leases",
        "snapshot" => "Snapshots",
        "tier" => "Access tiers",
        "batch" => "Batch requests",
        "appendblock" | "seal" => "Append blobs",
        "page" | "pagelist" | "incrementalcopy" => "Page blobs",
        "copy" => "Aborting a copy",
        "undelete" => "Soft delete",
        "expiry" => "Blob expiry",
        "immutabilitypolicies" | "legalhold" => "Immutability policies and legal holds",
        "query" => "Blob query",
        "blobs" => "Find blobs by tags",
        "rename" => "Renaming containers",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(host: Option<&str>, path: &str, domain: Option<&str>) -> Target {
        target(host, path, domain).unwrap()
    }

    #[test]
    fn path_style_and_host_style() {
        let x = t(Some("127.0.0.1:10000"), "/acct/cont/a/b%20c.txt", None);
        assert_eq!(
            (x.account.as_str(), x.container.as_deref(), x.blob.as_deref()),
            ("acct", Some("cont"), Some("a/b c.txt"))
        );
        let x = t(Some("acct.blob.example.net:8443"), "/cont/blob", Some("example.net"));
        assert_eq!(
            (x.account.as_str(), x.container.as_deref(), x.blob.as_deref()),
            ("acct", Some("cont"), Some("blob"))
        );
        // A host outside the domain falls back to path-style.
        let x = t(Some("127.0.0.1"), "/acct/cont", Some("example.net"));
        assert_eq!((x.account.as_str(), x.container.as_deref(), x.blob), ("acct", Some("cont"), None));
        let x = t(None, "/acct", None);
        assert_eq!((x.container, x.blob), (None, None));
        let x = t(None, "/acct/", None);
        assert_eq!(x.container, None);
        assert!(target(None, "/", None).is_err());
        assert!(target(None, "/acct/cont/%ff", None).is_err());
    }

    #[test]
    fn queries_keep_plus_signs_and_decode_percent() {
        let q = Query::parse(Some("sig=a+b%2Fc%3D&comp=list&empty")).unwrap();
        assert_eq!(q.get("sig"), Some("a+b/c="));
        assert_eq!(q.get("COMP"), Some("list"));
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn operations_by_method_and_query() {
        let blob = Target { account: "a".into(), container: Some("c".into()), blob: Some("b".into()) };
        let cont = Target { blob: None, ..blob.clone() };
        let acct = Target { container: None, ..cont.clone() };
        let h = HeaderMap::new();
        let q = |s: &str| Query::parse(Some(s)).unwrap();
        assert_eq!(operation(&Method::GET, &acct, &q("comp=list"), &h), Op::ListContainers);
        assert_eq!(operation(&Method::GET, &blob, &q("restype=account&comp=properties"), &h), Op::AccountInfo);
        assert_eq!(operation(&Method::PUT, &cont, &q("restype=container"), &h), Op::CreateContainer);
        assert_eq!(operation(&Method::GET, &cont, &q("restype=container&comp=list"), &h), Op::ListBlobs);
        assert_eq!(operation(&Method::PUT, &blob, &q(""), &h), Op::PutBlob);
        assert_eq!(operation(&Method::PUT, &blob, &q("comp=block&blockid=AA"), &h), Op::PutBlock);
        assert_eq!(operation(&Method::GET, &blob, &q("comp=blocklist"), &h), Op::GetBlockList);
        assert_eq!(operation(&Method::HEAD, &blob, &q(""), &h), Op::BlobProperties);
        assert!(matches!(operation(&Method::PUT, &blob, &q("comp=lease"), &h), Op::Unsupported("Leases")));
        let mut append = HeaderMap::new();
        append.insert("x-ms-blob-type", "AppendBlob".parse().unwrap());
        assert!(matches!(operation(&Method::PUT, &blob, &q(""), &append), Op::Unsupported(_)));
        let mut copy = HeaderMap::new();
        copy.insert("x-ms-copy-source", "http://x/a/c/b".parse().unwrap());
        assert_eq!(operation(&Method::PUT, &blob, &q(""), &copy), Op::CopyBlob);
    }
}
