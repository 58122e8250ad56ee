use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::types::error::{InvalidCiphertextException, KmsInvalidStateException};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

use super::*;

fn settings() -> AwsKmsSettings {
    AwsKmsSettings {
        endpoint: Some("http://127.0.0.1:1".into()),
        region: "us-east-1".into(),
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI-very-secret".into(),
        deletion_window_days: 7,
    }
}

fn config_error(s: AwsKmsSettings) -> String {
    match AwsKms::new(s) {
        Err(KeyError::Keyring(m)) => m,
        other => panic!("expected a settings error, got {other:?}"),
    }
}

#[test]
fn valid_settings_build_a_client() {
    let kms = AwsKms::new(settings()).unwrap();
    assert_eq!(kms.kind(), "aws-kms");
    assert!(AwsKms::new(AwsKmsSettings { endpoint: None, deletion_window_days: 30, ..settings() }).is_ok());
}

#[test]
fn deletion_window_must_be_within_aws_limits() {
    for days in [-1, 0, 6, 31, 365] {
        let m = config_error(AwsKmsSettings { deletion_window_days: days, ..settings() });
        assert!(m.contains("deletion_window_days"), "{m}");
    }
}

#[test]
fn bad_endpoint_region_or_credentials_are_refused() {
    let m = config_error(AwsKmsSettings { endpoint: Some("127.0.0.1:4566".into()), ..settings() });
    assert!(m.contains("endpoint"), "{m}");
    for region in ["", "eu central 1", "us-east-1/x"] {
        let m = config_error(AwsKmsSettings { region: region.into(), ..settings() });
        assert!(m.contains("region"), "{m}");
    }
    let m = config_error(AwsKmsSettings { secret_access_key: String::new(), ..settings() });
    assert!(m.contains("secret access key"), "{m}");
    let m = config_error(AwsKmsSettings { access_key_id: String::new(), ..settings() });
    assert!(m.contains("access key id"), "{m}");
}

#[test]
fn debug_never_prints_the_secret() {
    let s = settings();
    let shown = format!("{s:?} {:?}", AwsKms::new(s.clone()).unwrap());
    assert!(!shown.contains(&s.secret_access_key), "{shown}");
    assert!(shown.contains("***") && shown.contains("AKIDEXAMPLE") && shown.contains("us-east-1"), "{shown}");
}

#[test]
fn classify_follows_the_table() {
    let r = |code: &str| classify("Decrypt", "arn:k", Failure::Response, Some(code), Some(400), None);
    assert!(matches!(r("InvalidCiphertextException"), KeyError::Unwrap));
    assert!(matches!(r("IncorrectKeyException"), KeyError::Unwrap));
    for code in ["NotFoundException", "KMSInvalidStateException", "DisabledException"] {
        match r(code) {
            KeyError::Destroyed(m) => assert!(m.contains("arn:k"), "{m}"),
            other => panic!("{code}: {other:?}"),
        }
    }
    assert!(matches!(r("InvalidArnException"), KeyError::UnknownKey(k) if k == "arn:k"));
    for code in ["ThrottlingException", "KMSInternalException", "AccessDeniedException", "KeyUnavailableException"] {
        match r(code) {
            KeyError::Unavailable(m) => assert!(m.contains(code) && m.contains("Decrypt"), "{m}"),
            other => panic!("{code}: {other:?}"),
        }
    }
    let e = classify("Encrypt", "k", Failure::Response, None, Some(503), None);
    assert!(matches!(&e, KeyError::Unavailable(m) if m.contains("503")), "{e:?}");
    // A transport failure wins over whatever code might be attached.
    let e = classify("Encrypt", "k", Failure::Timeout, Some("InvalidCiphertextException"), None, None);
    assert!(matches!(&e, KeyError::Unavailable(m) if m.contains("timed out")), "{e:?}");
    let e = classify("Encrypt", "k", Failure::Dispatch, None, None, Some("connection refused"));
    assert!(matches!(&e, KeyError::Unavailable(m) if m.contains("connection refused")), "{e:?}");
}

fn meta(code: &str) -> aws_smithy_types::error::ErrorMetadata {
    aws_smithy_types::error::ErrorMetadata::builder().code(code).build()
}

fn response(status: u16) -> HttpResponse {
    HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
}

#[test]
fn sdk_errors_are_mapped() {
    let svc = |e: DecryptError, status| map_sdk_err(SdkError::service_error(e, response(status)), "Decrypt", "k");
    let bad = DecryptError::InvalidCiphertextException(
        InvalidCiphertextException::builder().meta(meta("InvalidCiphertextException")).build(),
    );
    assert!(matches!(svc(bad, 400), KeyError::Unwrap));
    let state = DecryptError::KmsInvalidStateException(
        KmsInvalidStateException::builder().meta(meta("KMSInvalidStateException")).build(),
    );
    assert!(matches!(svc(state, 400), KeyError::Destroyed(_)));
    let timeout: SdkError<DecryptError, HttpResponse> = SdkError::timeout_error("slow");
    assert!(matches!(map_sdk_err(timeout, "Decrypt", "k"), KeyError::Unavailable(_)));
    let refused: SdkError<DecryptError, HttpResponse> =
        SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
    match map_sdk_err(refused, "Decrypt", "k") {
        KeyError::Unavailable(m) => assert!(m.contains("cannot reach KMS"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn transport_detail_is_kept_short() {
    let long = "x".repeat(5000);
    let refused: SdkError<DecryptError, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io(long.into()));
    match map_sdk_err(refused, "Decrypt", "k") {
        KeyError::Unavailable(m) => assert!(m.len() < MAX_DETAIL + 100, "{} chars", m.len()),
        other => panic!("{other:?}"),
    }
}
