use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_800_000_000;

fn gate() -> RequestGate {
    RequestGate::new(HashMap::from([
        ("SHORT".to_owned(), PresignRules { max_seconds: 3600, sigv2: true }),
        ("V4ONLY".to_owned(), PresignRules { max_seconds: MAX_PRESIGN_SECONDS, sigv2: false }),
    ]))
}

fn check(method: Method, uri: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap());
    }
    gate().check(&method, &uri.parse().unwrap(), &h, NOW)
}

fn refused(r: Result<(), Refusal>) -> (u16, &'static str, &'static str) {
    let r = r.unwrap_err();
    (r.status.as_u16(), r.code, r.reason)
}

const V4: &str = "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab";

fn v4_presigned(ak: &str, expires: &str) -> String {
    format!(
        "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ak}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20260101T000000Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
    )
}

fn v2_presigned(ak: &str, expires: i64) -> String {
    format!("/b/k?AWSAccessKeyId={ak}&Expires={expires}&Signature=abc%3D")
}

#[test]
fn sigv4_header_requests_pass() {
    assert_eq!(check(Method::PUT, "/b/k", &[("authorization", V4)]), Ok(()));
    assert_eq!(
        check(Method::POST, "/b/k?uploads", &[("authorization", V4), ("content-type", "application/xml")]),
        Ok(())
    );
}

#[test]
fn form_uploads_are_refused_before_anything_else() {
    let form = [("content-type", "multipart/form-data; boundary=xyz")];
    assert_eq!(refused(check(Method::POST, "/bucket", &form)), (501, "NotImplemented", "post-object"));
    assert_eq!(
        refused(check(Method::POST, "/bucket", &[("content-type", " Multipart/Form-Data ;b=1")])).2,
        "post-object"
    );
    // Even signed, and with a second content type hiding behind a harmless first one.
    let two = [("authorization", V4), ("content-type", "text/plain"), ("content-type", "multipart/mixed")];
    assert_eq!(refused(check(Method::POST, "/bucket", &two)).2, "post-object");
}

#[test]
fn sigv2_header_auth_and_other_schemes_are_refused() {
    let r = check(
        Method::PUT,
        "/b/k",
        &[("authorization", "AWS AK:c2lnbmF0dXJl"), ("date", "Thu, 01 Jan 2015 00:00:00 GMT")],
    );
    let r = r.unwrap_err();
    assert_eq!((r.status.as_u16(), r.code, r.reason), (400, "InvalidRequest", "sigv2-header"));
    assert!(r.message.contains("AWS4-HMAC-SHA256"), "{}", r.message);
    assert_eq!(refused(check(Method::GET, "/b/k", &[("authorization", "Bearer x")])).2, "auth-scheme");
    let ecdsa = "AWS4-ECDSA-P256-SHA256 Credential=AK/20260101/s3/aws4_request, SignedHeaders=host, Signature=ab";
    assert_eq!(refused(check(Method::GET, "/b/k", &[("authorization", ecdsa)])).2, "auth-scheme");
}

#[test]
fn sts_scope_is_refused() {
    let sts = V4.replace("/s3/", "/sts/");
    assert_eq!(refused(check(Method::POST, "/", &[("authorization", &sts)])).2, "not-s3");
    let uri = v4_presigned("AK", "60").replace("%2Fs3%2F", "%2Fsts%2F");
    assert_eq!(refused(check(Method::GET, &uri, &[])).2, "not-s3");
}

#[test]
fn anonymous_and_ambiguous_requests_are_refused() {
    assert_eq!(refused(check(Method::GET, "/b/k", &[])), (403, "AccessDenied", "anonymous"));
    assert_eq!(refused(check(Method::PUT, "/b/k", &[("content-length", "5")])).2, "anonymous");
    let two = [("authorization", V4), ("authorization", V4)];
    assert_eq!(refused(check(Method::GET, "/b/k", &two)).2, "ambiguous-auth");
    assert_eq!(refused(check(Method::GET, &v4_presigned("AK", "60"), &[("authorization", V4)])).2, "ambiguous-auth");
    let dup = format!("{}&X-Amz-Expires=5", v4_presigned("AK", "60"));
    assert_eq!(refused(check(Method::GET, &dup, &[])).2, "ambiguous-auth");
}

#[test]
fn sigv4_presigned_lifetime_is_bounded() {
    assert_eq!(check(Method::GET, &v4_presigned("AK", "604800"), &[]), Ok(()));
    assert_eq!(check(Method::PUT, &v4_presigned("AK", "1"), &[]), Ok(()));
    for bad in ["604801", "4294967295", "0", "-1", "1e3", ""] {
        assert_eq!(
            refused(check(Method::GET, &v4_presigned("AK", bad), &[])).1,
            "AuthorizationQueryParametersError",
            "{bad}"
        );
    }
    // Per tenant.
    assert_eq!(check(Method::GET, &v4_presigned("SHORT", "3600"), &[]), Ok(()));
    let r = check(Method::GET, &v4_presigned("SHORT", "3601"), &[]).unwrap_err();
    assert!(r.message.contains("3600"), "{}", r.message);
    // A presigned URL without X-Amz-Expires at all.
    assert_eq!(refused(check(Method::GET, "/b/k?X-Amz-Signature=ab", &[])).2, "presign-expires");
}

#[test]
fn sigv2_presigned_reads_only_within_seven_days() {
    assert_eq!(check(Method::GET, &v2_presigned("AK", NOW + 3600), &[]), Ok(()));
    assert_eq!(check(Method::HEAD, &v2_presigned("AK", NOW + 604_800), &[]), Ok(()));
    assert_eq!(refused(check(Method::GET, &v2_presigned("AK", NOW + 604_801), &[])).2, "presign-expires");
    assert_eq!(refused(check(Method::GET, &v2_presigned("AK", NOW + 50 * 365 * 86_400), &[])).2, "presign-expires");
    assert_eq!(refused(check(Method::GET, &v2_presigned("AK", NOW), &[])), (403, "AccessDenied", "presign-expired"));
    assert_eq!(refused(check(Method::GET, &v2_presigned("AK", NOW - 10 * 365 * 86_400), &[])).2, "presign-expired");
    for m in [Method::PUT, Method::POST, Method::DELETE] {
        let r = check(m, &v2_presigned("AK", NOW + 60), &[]).unwrap_err();
        assert_eq!(r.reason, "sigv2-write");
        assert!(r.message.contains("SigV4"), "{}", r.message);
    }
    assert_eq!(refused(check(Method::GET, &v2_presigned("SHORT", NOW + 3601), &[])).2, "presign-expires");
    assert_eq!(refused(check(Method::GET, &v2_presigned("V4ONLY", NOW + 60), &[])).2, "sigv2-off");
    assert_eq!(refused(check(Method::GET, "/b/k?AWSAccessKeyId=AK&Signature=x", &[])).2, "presign-expires");
    assert_eq!(
        refused(check(Method::GET, "/b/k?AWSAccessKeyId=AK&Signature=x&Expires=soon", &[])).2,
        "presign-expires"
    );
}

#[test]
fn messages_never_echo_query_values() {
    let uri = format!("{}&Signature=SECRETSIG", v2_presigned("AK", NOW + 10_000_000)).replace("Signature=abc%3D&", "");
    for r in [
        check(Method::GET, &uri, &[]),
        check(Method::GET, &v4_presigned("AK", "99999999"), &[]),
        check(Method::PUT, "/b/k", &[("authorization", "AWS AK:SECRETSIG")]),
    ] {
        let r = r.unwrap_err();
        assert!(!r.message.contains("SECRETSIG") && !r.message.contains("99999999"), "{}", r.message);
    }
}

proptest! {
    #![proptest_config(crate::fuzz::config())]

    /// Fuzz: any request line and header values give a decision, never a panic.
    #[test]
    fn gate_never_panics(
        method in prop::sample::select(vec![Method::GET, Method::PUT, Method::POST, Method::HEAD, Method::DELETE]),
        query in "[A-Za-z0-9%&=_.~+-]{0,200}",
        auth in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        ctype in proptest::option::of("[ -~]{0,60}"),
        now in any::<i64>(),
    ) {
        let uri: Uri = match format!("/b/k?{query}").parse() { Ok(u) => u, Err(_) => return Ok(()) };
        let mut h = HeaderMap::new();
        if let Some(v) = auth.and_then(|a| http::HeaderValue::from_bytes(&a).ok()) {
            h.insert(http::header::AUTHORIZATION, v);
        }
        if let Some(v) = ctype.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
            h.insert(http::header::CONTENT_TYPE, v);
        }
        let _ = gate().check(&method, &uri, &h, now);
    }

    /// Fuzz: presigned parameters with arbitrary values never panic and never pass beyond 7 days.
    #[test]
    fn presigned_limits_hold_for_any_values(expires in any::<i64>(), now in -1_000_000_000_000i64..1_000_000_000_000i64) {
        let v2 = gate().check(&Method::GET, &v2_presigned("AK", expires).parse().unwrap(), &HeaderMap::new(), now);
        if v2.is_ok() {
            prop_assert!(expires > now && expires - now <= 604_800);
        }
        let v4 = gate().check(&Method::GET, &v4_presigned("AK", &expires.to_string()).parse().unwrap(), &HeaderMap::new(), now);
        if v4.is_ok() {
            prop_assert!((1..=604_800).contains(&expires));
        }
    }
}
