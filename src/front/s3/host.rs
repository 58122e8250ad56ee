//! Virtual-host-style addressing: `<bucket>.<domain>[:port]` names the bucket in the Host header.
//!
//! Hand-written because s3s 0.14's `SingleDomain` compares the Host header *with* its port against
//! the bare domain (so `bucket.s3.local:9000` never matches) and treats any other host name as a
//! bucket (so `localhost:9000` path-style requests fail). Here: the port is ignored, a host under
//! the domain names a bucket, and every other host (the domain itself, an IP, `localhost`, a
//! service name) means path style.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// Resolves `<bucket>.<domain>` Host headers; everything else is path style.
#[derive(Debug, Clone)]
pub struct BucketSubdomains {
    domain: String,
}

impl BucketSubdomains {
    /// `domain` is the base domain without port, e.g. `s3.example.internal`.
    pub fn new(domain: &str) -> Option<Self> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        valid.then_some(Self { domain })
    }

    /// The bucket named by `host`, if it is a subdomain of ours.
    pub(crate) fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = strip_port(host);
        let lower_ends = name.len() > self.domain.len() + 1 && name.to_ascii_lowercase().ends_with(&self.domain);
        if !lower_ends {
            return None;
        }
        let cut = name.len() - self.domain.len();
        let bucket = name.get(..cut)?.strip_suffix('.')?;
        (!bucket.is_empty()).then_some(bucket)
    }
}

/// `host:port` → `host`; IPv6 literals in brackets keep their brackets.
fn strip_port(host: &str) -> &str {
    if let Some((name, port)) = host.rsplit_once(':') {
        // An unbracketed IPv6 address has colons but no port.
        let has_port = name.ends_with(']') || !name.contains(':');
        if has_port && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return name;
        }
    }
    host
}

impl S3Host for BucketSubdomains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => VirtualHost::new(strip_port(host)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_from_subdomains_with_or_without_port() {
        let h = BucketSubdomains::new("s3.local").unwrap();
        assert_eq!(h.bucket_of("photos.s3.local:9000"), Some("photos"));
        assert_eq!(h.bucket_of("photos.s3.local"), Some("photos"));
        assert_eq!(h.bucket_of("my.dotted.bucket.s3.local"), Some("my.dotted.bucket"));
        assert_eq!(h.bucket_of("s3.local:9000"), None);
        assert_eq!(h.bucket_of("localhost:9000"), None);
        assert_eq!(h.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(h.bucket_of("evils3.local"), None);
        assert_eq!(h.bucket_of("[::1]:9000"), None);
    }

    #[test]
    fn path_style_hosts_have_no_bucket() {
        let h = BucketSubdomains::new("s3.local").unwrap();
        for host in ["localhost:9000", "blobseal.svc.cluster.local", "s3.local"] {
            let vh = h.parse_host_header(host).unwrap();
            assert_eq!(vh.bucket(), None, "{host}");
        }
    }

    #[test]
    fn invalid_domains_are_refused() {
        assert!(BucketSubdomains::new("").is_none());
        assert!(BucketSubdomains::new("a..b").is_none());
        assert!(BucketSubdomains::new("a b").is_none());
    }
}
