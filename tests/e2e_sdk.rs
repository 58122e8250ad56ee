//! aws-sdk-rust against the running blobseal binary over TCP (embedded default: filesystem backend).
//!
//! Runs twice over: with the SDK's default request checksums (WhenSupported: aws-chunked bodies with CRC
//! trailers) and with WhenRequired (plain bodies). Object sizes straddle the 64 KiB segment size.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::blobseal::Blobseal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCESS_KEY: &str = "E2ESDKACCESSKEY";
const SECRET_KEY: &str = "e2e-sdk-secret-key-0123456789abcdef";
const SIZES: [usize; 3] = [0, 1, 200 * 1024];

fn client(endpoint: &str, checksums: RequestChecksumCalculation) -> Client {
    let validation = match checksums {
        RequestChecksumCalculation::WhenRequired => ResponseChecksumValidation::WhenRequired,
        _ => ResponseChecksumValidation::WhenSupported,
    };
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e"))
        .force_path_style(true)
        .request_checksum_calculation(checksums)
        .response_checksum_validation(validation)
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(60)).build())
        .build();
    Client::from_conf(conf)
}

/// Deterministic, incompressible-looking bytes (xorshift), different per `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn get_bytes(c: &Client, bucket: &str, key: &str, range: Option<&str>) -> (Vec<u8>, Option<String>) {
    let out = c.get_object().bucket(bucket).key(key).set_range(range.map(str::to_owned)).send().await.unwrap();
    let content_range = out.content_range().map(str::to_owned);
    (out.body.collect().await.unwrap().into_bytes().to_vec(), content_range)
}

async fn roundtrip(checksums: RequestChecksumCalculation) {
    let bs = tokio::task::spawn_blocking(|| Blobseal::start_default(ACCESS_KEY, SECRET_KEY)).await.unwrap().unwrap();
    let c = client(&bs.endpoint, checksums);
    let bucket = "e2e-sdk";
    c.create_bucket().bucket(bucket).send().await.unwrap();

    let mut etags = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let body = data(size, i as u64 + 1);
        let key = format!("dir/obj-{size}");
        let put = c.put_object().bucket(bucket).key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        let etag = put.e_tag().unwrap().to_owned();
        assert!(etag.contains('-'), "ETag {etag} must not look like an MD5");

        let (got, _) = get_bytes(&c, bucket, &key, None).await;
        assert_eq!(got.len(), size);
        assert!(got == body, "GET of {key} returned different bytes");

        let head = c.head_object().bucket(bucket).key(&key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(size as i64));
        assert_eq!(head.e_tag(), Some(etag.as_str()));
        etags.push((key, size, etag));
    }

    // Ranges, including ones crossing the 64 KiB segment boundary and a suffix range.
    let big = data(200 * 1024, 3);
    let key = "dir/obj-204800";
    for (range, first, last) in [
        ("bytes=0-0", 0usize, 0usize),
        ("bytes=65530-65545", 65530, 65545),
        ("bytes=131072-", 131072, big.len() - 1),
        ("bytes=-10", big.len() - 10, big.len() - 1),
    ] {
        let (got, content_range) = get_bytes(&c, bucket, key, Some(range)).await;
        assert!(got.as_slice() == &big[first..=last], "range {range} returned wrong bytes");
        assert_eq!(content_range, Some(format!("bytes {first}-{last}/{}", big.len())), "range {range}");
    }

    // Listing shows plaintext sizes and the same ETags as PUT.
    let list = c.list_objects_v2().bucket(bucket).prefix("dir/").send().await.unwrap();
    let mut listed: Vec<(String, usize, String)> = list
        .contents()
        .iter()
        .map(|o| (o.key().unwrap().to_owned(), o.size().unwrap() as usize, o.e_tag().unwrap().to_owned()))
        .collect();
    listed.sort();
    etags.sort();
    assert_eq!(listed, etags);

    for (key, _, _) in &etags {
        c.delete_object().bucket(bucket).key(key).send().await.unwrap();
        let err = c.get_object().bucket(bucket).key(key).send().await.unwrap_err();
        assert!(err.into_service_error().is_no_such_key(), "GET after DELETE of {key} must be NoSuchKey");
    }
    assert!(c.list_objects_v2().bucket(bucket).send().await.unwrap().contents().is_empty());
    c.delete_bucket().bucket(bucket).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_roundtrip_default_checksums() {
    roundtrip(RequestChecksumCalculation::WhenSupported).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_roundtrip_checksums_when_required() {
    roundtrip(RequestChecksumCalculation::WhenRequired).await;
}

/// A minimal HTTP/1.1 GET (Connection: close) returning (status, body); enough for a presigned URL.
async fn http_get(uri: &str, headers: &[(String, String)]) -> (u16, Vec<u8>) {
    let rest = uri.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_field = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_field.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_presigned_get() {
    let bs = tokio::task::spawn_blocking(|| Blobseal::start_default(ACCESS_KEY, SECRET_KEY)).await.unwrap().unwrap();
    let c = client(&bs.endpoint, RequestChecksumCalculation::WhenRequired);
    c.create_bucket().bucket("e2e-presign").send().await.unwrap();
    let body = data(100_000, 9);
    c.put_object().bucket("e2e-presign").key("p").body(ByteStream::from(body.clone())).send().await.unwrap();

    let cfg = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let presigned = c.get_object().bucket("e2e-presign").key("p").presigned(cfg).await.unwrap();
    let headers: Vec<(String, String)> = presigned.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let (status, got) = http_get(presigned.uri(), &headers).await;
    assert_eq!(status, 200);
    assert!(got == body, "presigned GET returned different bytes");

    // The same URL with one signature character changed is refused.
    let uri = presigned.uri();
    let sig_at = uri.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &uri[sig_at..sig_at + 1] == "0" { "1" } else { "0" };
    let forged = format!("{}{}{}", &uri[..sig_at], flipped, &uri[sig_at + 1..]);
    let (status, got) = http_get(&forged, &headers).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&got).contains("SignatureDoesNotMatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_wrong_secret_is_refused() {
    let bs = tokio::task::spawn_blocking(|| Blobseal::start_default(ACCESS_KEY, SECRET_KEY)).await.unwrap().unwrap();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&bs.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, "not-the-secret", None, None, "e2e"))
        .force_path_style(true)
        .build();
    let err = Client::from_conf(conf).list_buckets().send().await.unwrap_err();
    let code = err.into_service_error().meta().code().map(str::to_owned);
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"));
}

/// Create, three 5 MiB parts and a short tail (uploaded out of order), complete; GET, HEAD, a range
/// across a part boundary, the listing, and the spent upload id afterwards.
async fn multipart(checksums: RequestChecksumCalculation) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    const PART: usize = 5 * 1024 * 1024;

    let bs = tokio::task::spawn_blocking(|| Blobseal::start_default(ACCESS_KEY, SECRET_KEY)).await.unwrap().unwrap();
    let c = client(&bs.endpoint, checksums);
    let (bucket, key) = ("e2e-multipart", "mp/object");
    c.create_bucket().bucket(bucket).send().await.unwrap();
    let parts: Vec<Vec<u8>> = vec![data(PART, 21), data(PART, 22), data(PART, 23), data(12_345, 24)];
    let created = c.create_multipart_upload().bucket(bucket).key(key).content_type("application/x-e2e").send();
    let upload_id = created.await.unwrap().upload_id().unwrap().to_owned();

    let mut completed = Vec::new();
    for n in [4usize, 2, 1, 3] {
        let body = ByteStream::from(parts[n - 1].clone());
        let req = c.upload_part().bucket(bucket).key(key).upload_id(&upload_id).part_number(n as i32).body(body);
        let etag = req.send().await.unwrap().e_tag().unwrap().to_owned();
        completed.push(CompletedPart::builder().part_number(n as i32).e_tag(etag).build());
    }
    completed.sort_by_key(|p| p.part_number());
    let upload = CompletedMultipartUpload::builder().set_parts(Some(completed)).build();
    let done = c.complete_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).multipart_upload(upload);
    let etag = done.send().await.unwrap().e_tag().unwrap().to_owned();

    let whole: Vec<u8> = parts.concat();
    let (got, _) = get_bytes(&c, bucket, key, None).await;
    assert_eq!(got.len(), whole.len());
    assert!(got == whole, "GET of the multipart object returned different bytes");
    let head = c.head_object().bucket(bucket).key(key).send().await.unwrap();
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("application/x-e2e"));
    let range = format!("bytes={}-{}", PART - 2, PART + 1);
    let (got, content_range) = get_bytes(&c, bucket, key, Some(&range)).await;
    assert!(got.as_slice() == &whole[PART - 2..PART + 2], "range across the part 1/2 boundary");
    assert_eq!(content_range, Some(format!("bytes {}-{}/{}", PART - 2, PART + 1, whole.len())));
    let list = c.list_objects_v2().bucket(bucket).send().await.unwrap();
    let listed: Vec<(&str, i64)> = list.contents().iter().map(|o| (o.key().unwrap(), o.size().unwrap())).collect();
    assert_eq!(listed, vec![(key, whole.len() as i64)]);

    // After Complete the upload id is spent.
    let late = c.upload_part().bucket(bucket).key(key).upload_id(&upload_id).part_number(5);
    let err = late.body(ByteStream::from_static(b"late")).send().await.unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("NoSuchUpload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_multipart_default_checksums() {
    multipart(RequestChecksumCalculation::WhenSupported).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_multipart_checksums_when_required() {
    multipart(RequestChecksumCalculation::WhenRequired).await;
}
