//! SigV4 verification against botocore's signature for a fixed request
//! (/work/shared/bench/kload/testdata/sigv4_botocore.py → sigv4_expected.txt).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use millstream_aws_protocol::sigv4::{AuthError, Identity, Mode, verify};

const BOTOCORE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, \
     SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
     Signature=bf353fb8df116c696162d5e0573a29c2ff075f8e8790da6873d6aedf1a0905d6";
const SIGNED_AT: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn credentials() -> HashMap<String, String> {
    HashMap::from([(
        "AKIDEXAMPLE".to_owned(),
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
    )])
}

fn request(authorization: Option<&str>, target: &str) -> Parts {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:4567/")
        .header("host", "127.0.0.1:4567")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", target)
        .header("x-amz-date", "20260101T000000Z");
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn strict(parts: &Parts, body: &[u8], now: SystemTime) -> Result<Identity, AuthError> {
    let creds = credentials();
    verify(parts, body, now, Mode::Strict(&creds))
}

#[test]
fn expected_file_matches_the_pinned_header() {
    let path = "/work/shared/bench/kload/testdata/sigv4_expected.txt";
    if let Ok(text) = std::fs::read_to_string(path) {
        assert_eq!(text.trim(), BOTOCORE_AUTHORIZATION);
    }
}

#[test]
fn strict_mode_accepts_botocores_signature() {
    let parts = request(Some(BOTOCORE_AUTHORIZATION), "Kinesis_20131202.ListStreams");
    let identity = strict(&parts, b"{}", at(SIGNED_AT + 60)).unwrap();
    assert_eq!(identity.access_key_id, "AKIDEXAMPLE");
    assert_eq!(identity.region, "us-east-1");
    assert_eq!(identity.service, "kinesis");
    assert_eq!(identity.security_token, None);
}

#[test]
fn strict_mode_rejects_any_single_changed_byte() {
    let mismatch = "The request signature we calculated does not match the signature you provided. Check your \
                    AWS Secret Access Key and signing method. Consult the service documentation for details.";
    let now = at(SIGNED_AT);
    let body_changed = strict(
        &request(Some(BOTOCORE_AUTHORIZATION), "Kinesis_20131202.ListStreams"),
        b"{ }",
        now,
    );
    let header_changed = strict(
        &request(Some(BOTOCORE_AUTHORIZATION), "Kinesis_20131202.ListStreamz"),
        b"{}",
        now,
    );
    let signature_changed = strict(
        &request(
            Some(&BOTOCORE_AUTHORIZATION.replace("d5e0573a", "d5e0573b")),
            "Kinesis_20131202.ListStreams",
        ),
        b"{}",
        now,
    );
    for result in [body_changed, header_changed, signature_changed] {
        let err = result.unwrap_err();
        assert_eq!(err.code, "InvalidSignatureException");
        assert_eq!(err.message, mismatch);
    }
}

#[test]
fn strict_mode_rejects_unknown_keys_and_skew() {
    let parts = request(
        Some(&BOTOCORE_AUTHORIZATION.replace("AKIDEXAMPLE", "AKIDOTHER")),
        "Kinesis_20131202.ListStreams",
    );
    let err = strict(&parts, b"{}", at(SIGNED_AT)).unwrap_err();
    assert_eq!(err.code, "UnrecognizedClientException");
    assert_eq!(
        err.message,
        "The security token included in the request is invalid."
    );

    let parts = request(Some(BOTOCORE_AUTHORIZATION), "Kinesis_20131202.ListStreams");
    let err = strict(&parts, b"{}", at(SIGNED_AT + 5 * 60 + 1)).unwrap_err();
    assert_eq!(err.code, "InvalidSignatureException");
    assert_eq!(
        err.message,
        "Signature expired: 20260101T000000Z is now earlier than 20260101T000001Z (20260101T000501Z - 5 min.)"
    );
    let err = strict(&parts, b"{}", at(SIGNED_AT - 5 * 60 - 1)).unwrap_err();
    assert!(
        err.message
            .starts_with("Signature not yet current: 20260101T000000Z is still later than"),
        "{err}"
    );
    assert!(strict(&parts, b"{}", at(SIGNED_AT + 5 * 60)).is_ok());
}

#[test]
fn presence_mode_accepts_any_credentials_but_requires_auth() {
    let parts = request(
        Some(
            &BOTOCORE_AUTHORIZATION
                .replace("AKIDEXAMPLE", "123456789012")
                .replace("Signature=bf", "Signature=00"),
        ),
        "Kinesis_20131202.ListStreams",
    );
    let identity = verify(&parts, b"{}", at(0), Mode::PresenceOnly).unwrap();
    assert_eq!(identity.access_key_id, "123456789012");

    let err = verify(&request(None, "x"), b"", at(0), Mode::PresenceOnly).unwrap_err();
    assert_eq!(err.code, "MissingAuthenticationTokenException");
    assert_eq!(err.message, "Missing Authentication Token");
}

#[test]
fn incomplete_header_lists_every_missing_part() {
    let mut parts = request(
        Some("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request"),
        "x",
    );
    parts.headers.remove("x-amz-date");
    let err = verify(&parts, b"", at(0), Mode::PresenceOnly).unwrap_err();
    assert_eq!(err.code, "IncompleteSignatureException");
    assert_eq!(
        err.message,
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
         parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
         Authorization=AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request"
    );
}

#[test]
fn the_credential_scope_needs_five_parts_ending_in_aws4_request() {
    let with_credential = |credential: &str| {
        request(
            Some(&format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=00"
            )),
            "x",
        )
    };
    for (credential, region) in [
        ("AKID/20260101/us-east-1/kinesis", "us-east-1"),
        (
            "AKID/20260101/eu-west-1/kinesis/aws4_request/extra",
            "eu-west-1",
        ),
        ("AKID/20260101", ""),
    ] {
        let err = verify(&with_credential(credential), b"", at(0), Mode::PresenceOnly).unwrap_err();
        assert_eq!(err.code, "IncompleteSignatureException", "{credential}");
        assert_eq!(
            err.message,
            format!("Credential should be scoped to a valid region, not '{region}'. "),
            "{credential}"
        );
    }
    let err = verify(
        &with_credential("AKID/20260101/us-east-1/kinesis/aws4_other"),
        b"",
        at(0),
        Mode::PresenceOnly,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_other'. "
    );

    // A repeated parameter counts with its last value.
    let parts = request(
        Some(
            "AWS4-HMAC-SHA256 Credential=FIRST/20260101/us-east-1/kinesis/aws4_request, \
             Credential=SECOND/20260101/us-west-2/kinesis/aws4_request, SignedHeaders=host, Signature=00",
        ),
        "x",
    );
    let identity = verify(&parts, b"", at(0), Mode::PresenceOnly).unwrap();
    assert_eq!(
        (identity.access_key_id.as_str(), identity.region.as_str()),
        ("SECOND", "us-west-2")
    );
}

#[test]
fn query_auth_is_checked_for_presence_and_conflicts() {
    let parts = http::Request::builder()
        .method("POST")
        .uri("http://h/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Feu-west-1%2Fkinesis%2Faws4_request")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let err = verify(&parts, b"", at(0), Mode::PresenceOnly).unwrap_err();
    assert_eq!(err.code, "IncompleteSignatureException");
    assert_eq!(
        err.message,
        "AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include \
         'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the \
         query-string parameters."
    );

    let mut both = parts.clone();
    both.headers
        .insert("authorization", BOTOCORE_AUTHORIZATION.parse().unwrap());
    let err = verify(&both, b"", at(0), Mode::PresenceOnly).unwrap_err();
    assert_eq!(err.code, "InvalidSignatureException");
    assert_eq!(
        err.message,
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
    );
}

#[test]
fn presigned_query_auth_verifies_in_strict_mode() {
    // Signed here with the same algorithm as botocore's presigner (no payload header, empty body).
    let creds = credentials();
    let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fkinesis%2Faws4_request\
                &X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host";
    let signature = presign_reference(base);
    let uri = format!("http://127.0.0.1:4567/?{base}&X-Amz-Signature={signature}");
    let parts = http::Request::builder()
        .method("GET")
        .uri(&uri)
        .header("host", "127.0.0.1:4567")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let identity = verify(&parts, b"", at(SIGNED_AT), Mode::Strict(&creds)).unwrap();
    assert_eq!(identity.region, "us-east-1");
    let tampered = uri.replace("X-Amz-Expires=300", "X-Amz-Expires=301");
    let parts = http::Request::builder()
        .method("GET")
        .uri(&tampered)
        .header("host", "127.0.0.1:4567")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(
        verify(&parts, b"", at(SIGNED_AT), Mode::Strict(&creds))
            .unwrap_err()
            .code,
        "InvalidSignatureException"
    );
}

/// Independent textbook SigV4 computation for the presigned test (canonical query already sorted).
fn presign_reference(query: &str) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let canonical = format!(
        "GET\n/\n{query}\nhost:127.0.0.1:4567\n\nhost\n{}",
        hex::encode(Sha256::digest(b""))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/kinesis/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = ["20260101", "us-east-1", "kinesis", "aws4_request"]
        .iter()
        .fold(
            b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_vec(),
            |key, part| hmac(&key, part),
        );
    hex::encode(hmac(&key, &to_sign))
}
