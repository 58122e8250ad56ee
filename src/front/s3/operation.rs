//! The S3 operation a request asks for, named as in the S3 API reference, from its head alone
//! (method, path shape, query keys, the copy-source header). For metrics and log lines: a fixed,
//! bounded set of names, computed before authentication without reading anything else. s3s routes
//! the request itself; a request this names wrongly is still served correctly.

use http::Method;

/// Where the request's path points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Service,
    Bucket,
    Object,
}

/// The operation's name, or `Unknown` for a head no S3 operation has.
pub fn operation_name(
    method: &Method,
    path: &str,
    query: Option<&str>,
    bucket_in_host: bool,
    copy_source: bool,
) -> &'static str {
    let target = target(path, bucket_in_host);
    let has =
        |name: &str| query.is_some_and(|q| q.split('&').any(|pair| pair.split('=').next().is_some_and(|k| k == name)));
    match target {
        Target::Service => match *method {
            Method::GET => "ListBuckets",
            _ => "Unknown",
        },
        Target::Bucket => bucket_operation(method, &has),
        Target::Object => object_operation(method, &has, copy_source),
    }
}

fn target(path: &str, bucket_in_host: bool) -> Target {
    let rest = path.strip_prefix('/').unwrap_or(path);
    if bucket_in_host {
        return if rest.is_empty() { Target::Bucket } else { Target::Object };
    }
    match rest.split_once('/') {
        None if rest.is_empty() => Target::Service,
        None => Target::Bucket,
        Some((_, "")) => Target::Bucket,
        Some(_) => Target::Object,
    }
}

/// Bucket subresources, in the order they are checked (first match names the operation).
const BUCKET_SUBRESOURCES: [(&str, &str, &str, &str); 9] = [
    // (query key, GET, PUT, DELETE)
    ("versioning", "GetBucketVersioning", "PutBucketVersioning", "Unknown"),
    ("location", "GetBucketLocation", "Unknown", "Unknown"),
    ("tagging", "GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    ("policy", "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    ("acl", "GetBucketAcl", "PutBucketAcl", "Unknown"),
    ("cors", "GetBucketCors", "PutBucketCors", "DeleteBucketCors"),
    ("lifecycle", "GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration", "DeleteBucketLifecycle"),
    ("object-lock", "GetObjectLockConfiguration", "PutObjectLockConfiguration", "Unknown"),
    ("encryption", "GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"),
];

fn bucket_operation(method: &Method, has: &dyn Fn(&str) -> bool) -> &'static str {
    for (key, get, put, delete) in BUCKET_SUBRESOURCES {
        if has(key) {
            return match *method {
                Method::GET => get,
                Method::PUT => put,
                Method::DELETE => delete,
                _ => "Unknown",
            };
        }
    }
    match *method {
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("versions") => "ListObjectVersions",
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::GET => "ListObjects",
        Method::HEAD => "HeadBucket",
        Method::PUT => "CreateBucket",
        Method::DELETE => "DeleteBucket",
        Method::POST if has("delete") => "DeleteObjects",
        // Browser-form uploads (POST with a form body to the bucket).
        Method::POST => "PostObject",
        _ => "Unknown",
    }
}

fn object_operation(method: &Method, has: &dyn Fn(&str) -> bool, copy_source: bool) -> &'static str {
    let upload = has("uploadId");
    match *method {
        Method::GET if upload => "ListParts",
        Method::GET if has("tagging") => "GetObjectTagging",
        Method::GET if has("acl") => "GetObjectAcl",
        Method::GET if has("attributes") => "GetObjectAttributes",
        Method::GET if has("retention") => "GetObjectRetention",
        Method::GET if has("legal-hold") => "GetObjectLegalHold",
        Method::GET => "GetObject",
        Method::HEAD => "HeadObject",
        Method::PUT if upload && copy_source => "UploadPartCopy",
        Method::PUT if upload => "UploadPart",
        Method::PUT if has("tagging") => "PutObjectTagging",
        Method::PUT if has("acl") => "PutObjectAcl",
        Method::PUT if has("retention") => "PutObjectRetention",
        Method::PUT if has("legal-hold") => "PutObjectLegalHold",
        Method::PUT if copy_source => "CopyObject",
        Method::PUT => "PutObject",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if upload => "CompleteMultipartUpload",
        Method::POST if has("restore") => "RestoreObject",
        Method::DELETE if upload => "AbortMultipartUpload",
        Method::DELETE if has("tagging") => "DeleteObjectTagging",
        Method::DELETE => "DeleteObject",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str, query: Option<&str>) -> &'static str {
        operation_name(&method, path, query, false, false)
    }

    #[test]
    fn path_style_requests_are_named_as_in_the_s3_reference() {
        assert_eq!(op(Method::GET, "/", None), "ListBuckets");
        assert_eq!(op(Method::PUT, "/b", None), "CreateBucket");
        assert_eq!(op(Method::GET, "/b", Some("list-type=2&prefix=a")), "ListObjectsV2");
        assert_eq!(op(Method::GET, "/b/", None), "ListObjects");
        assert_eq!(op(Method::GET, "/b", Some("versioning")), "GetBucketVersioning");
        assert_eq!(op(Method::POST, "/b", Some("delete")), "DeleteObjects");
        assert_eq!(op(Method::GET, "/b/k/with/slashes", None), "GetObject");
        assert_eq!(op(Method::PUT, "/b/k", None), "PutObject");
        assert_eq!(op(Method::POST, "/b/k", Some("uploads")), "CreateMultipartUpload");
        assert_eq!(op(Method::PUT, "/b/k", Some("partNumber=1&uploadId=x")), "UploadPart");
        assert_eq!(
            operation_name(&Method::PUT, "/b/k", Some("partNumber=1&uploadId=x"), false, true),
            "UploadPartCopy"
        );
        assert_eq!(operation_name(&Method::PUT, "/b/k", None, false, true), "CopyObject");
        assert_eq!(op(Method::POST, "/b/k", Some("uploadId=x")), "CompleteMultipartUpload");
        assert_eq!(op(Method::DELETE, "/b/k", Some("uploadId=x")), "AbortMultipartUpload");
        assert_eq!(op(Method::PUT, "/b/k", Some("tagging")), "PutObjectTagging");
        assert_eq!(op(Method::PATCH, "/b/k", None), "Unknown");
        // A key named like a subresource is still an object.
        assert_eq!(op(Method::GET, "/b/versioning", None), "GetObject");
        // A query value equal to a subresource name is not that subresource.
        assert_eq!(op(Method::GET, "/b", Some("prefix=versioning")), "ListObjects");
    }

    #[test]
    fn virtual_host_style_takes_the_bucket_from_the_host() {
        assert_eq!(operation_name(&Method::GET, "/", None, true, false), "ListObjects");
        assert_eq!(operation_name(&Method::GET, "/k", None, true, false), "GetObject");
        assert_eq!(operation_name(&Method::HEAD, "/", None, true, false), "HeadBucket");
    }
}
