use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

// ---------------------------------------------------------------------------------------------
// Invocation payload

#[test]
fn invocation_payload_has_exactly_the_documented_fields() {
    let kinesis = KinesisRecordMetadata {
        shard_id: "shardId-000000000000".into(),
        partition_key: "pk".into(),
        approximate_arrival_ms: 1_700_000_000_123,
        sequence_number: "49546986683135544286507457936321625675700192471156785154".into(),
        subsequence_number: 0,
    };
    let records = [
        TransformInput {
            record_id: "r0".into(),
            approximate_arrival_ms: 1_700_000_000_123,
            data: b"hello",
            kinesis: Some(kinesis),
        },
        TransformInput {
            record_id: "r1".into(),
            approximate_arrival_ms: 1_700_000_000_456,
            data: b"",
            kinesis: None,
        },
    ];
    let payload = invocation_payload(
        "00540a87-5050-496a-84e4-e7d92bbaf5e2",
        "arn:aws:firehose:us-east-1:123456789012:deliverystream/name",
        Some("arn:aws:kinesis:us-east-1:123456789012:stream/src"),
        "us-east-1",
        &records,
    );
    let actual: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        actual,
        json!({
            "invocationId": "00540a87-5050-496a-84e4-e7d92bbaf5e2",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/name",
            "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/src",
            "region": "us-east-1",
            "records": [
                {
                    "recordId": "r0",
                    "approximateArrivalTimestamp": 1_700_000_000_123_i64,
                    "data": "aGVsbG8=",
                    "kinesisRecordMetadata": {
                        "shardId": "shardId-000000000000",
                        "partitionKey": "pk",
                        "approximateArrivalTimestamp": 1_700_000_000_123_i64,
                        "sequenceNumber": "49546986683135544286507457936321625675700192471156785154",
                        "subsequenceNumber": 0
                    }
                },
                {"recordId": "r1", "approximateArrivalTimestamp": 1_700_000_000_456_i64, "data": ""}
            ]
        })
    );
}

#[test]
fn direct_put_payload_omits_the_source_stream() {
    let records = [TransformInput {
        record_id: "a".into(),
        approximate_arrival_ms: 1,
        data: b"x",
        kinesis: None,
    }];
    let actual: Value = serde_json::from_slice(&invocation_payload(
        "id",
        "arn",
        None,
        "eu-west-1",
        &records,
    ))
    .unwrap();
    assert!(actual.get("sourceKinesisStreamArn").is_none());
    assert_eq!(actual["region"], "eu-west-1");
}

// ---------------------------------------------------------------------------------------------
// Response matching

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn ok(data: &[u8]) -> RecordOutcome {
    RecordOutcome::Ok {
        data: Bytes::copy_from_slice(data),
        partition_keys: BTreeMap::new(),
    }
}

fn failed(code: &str) -> impl Fn(&RecordOutcome) -> bool + '_ {
    move |outcome| matches!(outcome, RecordOutcome::Failed { code: c, .. } if c == code)
}

#[test]
fn response_is_matched_by_record_id_in_input_order() {
    let body = json!({"records": [
        {"recordId": "b", "result": "Dropped"},
        {"recordId": "c", "result": "ProcessingFailed", "data": "eA=="},
        {"recordId": "a", "result": "Ok", "data": BASE64.encode("transformed a")},
    ]});
    let out = match_response(&ids(&["a", "b", "c"]), body.to_string().as_bytes());
    assert_eq!(
        out,
        vec![
            ok(b"transformed a"),
            RecordOutcome::Dropped,
            RecordOutcome::Failed {
                code: "Lambda.ProcessingFailedStatus".into(),
                message: "ProcessingFailed status set for record".into()
            },
        ]
    );
}

#[test]
fn missing_duplicate_and_unknown_ids_affect_only_their_records() {
    let body = json!({"records": [
        {"recordId": "a", "result": "Ok", "data": "YQ=="},
        {"recordId": "b", "result": "Ok", "data": "Yg=="},
        {"recordId": "b", "result": "Ok", "data": "Yg=="},
        {"recordId": "stranger", "result": "Ok", "data": "eA=="},
        {"result": "Ok", "data": "eA=="},
    ]});
    let out = match_response(&ids(&["a", "b", "c"]), body.to_string().as_bytes());
    assert_eq!(out[0], ok(b"a"));
    assert!(failed("Lambda.DuplicatedRecordId")(&out[1]), "{:?}", out[1]);
    assert!(failed("Lambda.MissingRecordId")(&out[2]), "{:?}", out[2]);
    assert_eq!(out.len(), 3);
}

#[test]
fn unparseable_bodies_fail_every_record() {
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"{\"records\": \"nope\"}",
        b"{\"records\": [1]}",
    ] {
        let out = match_response(&ids(&["a", "b"]), body);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(failed("Lambda.JsonProcessingException")),
            "{body:?}: {out:?}"
        );
    }
}

#[test]
fn json_without_records_reports_every_record_missing() {
    let out = match_response(&ids(&["a", "b"]), b"{}");
    assert!(out.iter().all(failed("Lambda.MissingRecordId")), "{out:?}");
}

#[test]
fn invalid_entries_fail_their_record_as_function_errors() {
    let body = json!({"records": [
        {"recordId": "no-result", "data": "eA=="},
        {"recordId": "bad-result", "result": "OK", "data": "eA=="},
        {"recordId": "no-data", "result": "Ok"},
        {"recordId": "bad-base64", "result": "Ok", "data": "***"},
        {"recordId": "null-data", "result": "Ok", "data": null},
        {"recordId": "fine", "result": "Ok", "data": ""},
    ]});
    let out = match_response(
        &ids(&[
            "no-result",
            "bad-result",
            "no-data",
            "bad-base64",
            "null-data",
            "fine",
        ]),
        body.to_string().as_bytes(),
    );
    for outcome in &out[..5] {
        assert_eq!(
            outcome,
            &RecordOutcome::Failed {
                code: codes::FUNCTION_ERROR.into(),
                message: codes::INVALID_RESULT_MESSAGE.into()
            }
        );
    }
    assert_eq!(out[5], ok(b""));
}

#[test]
fn partition_keys_come_from_metadata() {
    let body = json!({"records": [
        {"recordId": "a", "result": "Ok", "data": "YQ==",
         "metadata": {"partitionKeys": {"customerId": "123", "year": 2024, "flag": true}}},
        {"recordId": "b", "result": "Ok", "data": "Yg==", "metadata": {"partitionKeys": {"nested": {"x": 1}}}},
        {"recordId": "c", "result": "Ok", "data": "Yw==", "metadata": {}},
    ]});
    let out = match_response(&ids(&["a", "b", "c"]), body.to_string().as_bytes());
    let expected: BTreeMap<String, String> =
        [("customerId", "123"), ("year", "2024"), ("flag", "true")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
    assert_eq!(
        out[0],
        RecordOutcome::Ok {
            data: Bytes::from_static(b"a"),
            partition_keys: expected
        }
    );
    assert!(failed("Lambda.FunctionError")(&out[1]));
    assert_eq!(out[2], ok(b"c"));
}

// ---------------------------------------------------------------------------------------------
// SigV4

#[test]
fn civil_dates_round_trip_known_days() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(19_722), (2023, 12, 31));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    assert_eq!(
        amz_timestamp(at),
        ("20150830T123600Z".to_owned(), "20150830".to_owned())
    );
}

#[test]
fn signature_matches_the_aws_post_vanilla_test_vector() {
    // From AWS's SigV4 test suite ("post-vanilla").
    let credentials = Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    };
    let input = SigningInput {
        method: "POST",
        path: "/",
        host: "example.amazonaws.com",
        extra_headers: &[],
        payload: b"",
        region: "us-east-1",
        service: "service",
    };
    let headers = sign_request(
        &input,
        &credentials,
        UNIX_EPOCH + Duration::from_secs(1_440_938_160),
    );
    let authorization = &headers
        .iter()
        .find(|(name, _)| *name == "authorization")
        .unwrap()
        .1;
    assert_eq!(
        authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    );
}

// ---------------------------------------------------------------------------------------------
// A fake Lambda over real HTTP

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
enum Reply {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Accept the request and never answer.
    Hang,
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Respond {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

fn reply_with(status: u16, headers: &[(&'static str, &str)], body: impl Into<Vec<u8>>) -> Reply {
    Reply::Respond {
        status,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        body: body.into(),
    }
}

struct FakeLambda {
    endpoint: String,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl FakeLambda {
    /// Serves `replies` in order, repeating the last one.
    async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let captured = requests.clone();
        tokio::spawn(async move {
            let mut served = 0;
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let reply = replies[served.min(replies.len() - 1)].clone();
                served += 1;
                let captured = captured.clone();
                tokio::spawn(async move { serve(stream, reply, captured).await });
            }
        });
        Self { endpoint, requests }
    }

    fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, captured: Arc<Mutex<Vec<Captured>>>) {
    let mut buffer = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed before sending headers");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8(buffer[..header_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, path) = (
        request_line.next().unwrap().to_owned(),
        request_line.next().unwrap().to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buffer[header_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    captured.lock().unwrap().push(Captured {
        method,
        path,
        headers,
        body,
    });

    match reply {
        Reply::Hang => std::future::pending::<()>().await,
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            // The client may hang up early on an oversized body; that is what we test there.
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    }
}

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:transform:live";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        total_backoff_max: Duration::from_secs(5),
    }
}

fn client(fake: &FakeLambda) -> LambdaClient {
    LambdaClient::new(&fake.endpoint, "us-east-1", None)
        .unwrap()
        .with_retry_policy(fast_retries())
}

fn ok_body(entries: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let records: Vec<Value> = entries
        .iter()
        .map(|(id, result, data)| json!({"recordId": id, "result": result, "data": BASE64.encode(data)}))
        .collect();
    json!({ "records": records }).to_string().into_bytes()
}

#[tokio::test]
async fn invoke_posts_the_payload_to_the_invocations_path() {
    let fake = FakeLambda::start(vec![reply(200, "{\"records\":[]}")]).await;
    let payload = Bytes::from_static(b"{\"invocationId\":\"x\"}");
    let body = client(&fake)
        .invoke(FUNCTION_ARN, payload.clone())
        .await
        .unwrap();
    assert_eq!(body, Bytes::from_static(b"{\"records\":[]}"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Atransform%3Alive/invocations"
    );
    assert_eq!(
        request.header("x-amz-invocation-type"),
        Some("RequestResponse")
    );
    assert_eq!(request.body, payload.to_vec());
    assert!(
        request.header("authorization").is_none(),
        "unsigned without credentials"
    );
}

#[tokio::test]
async fn signed_invoke_passes_an_independent_sigv4_verifier() {
    use millstream_aws_protocol::sigv4::{Mode, verify};

    let fake = FakeLambda::start(vec![reply(200, "{}")]).await;
    let credentials = (
        "AKIDEXAMPLE".to_owned(),
        "secret/key+EXAMPLE".to_owned(),
        Some("session-token".to_owned()),
    );
    let client = LambdaClient::new(&fake.endpoint, "eu-central-1", Some(credentials)).unwrap();
    client
        .invoke(FUNCTION_ARN, Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();

    let request = &fake.requests()[0];
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let known: HashMap<String, String> =
        [("AKIDEXAMPLE".to_owned(), "secret/key+EXAMPLE".to_owned())].into();
    let identity = verify(
        &parts,
        &request.body,
        SystemTime::now(),
        Mode::Strict(&known),
    )
    .unwrap();
    assert_eq!(identity.region, "eu-central-1");
    assert_eq!(identity.service, "lambda");
    assert_eq!(identity.security_token.as_deref(), Some("session-token"));

    // The verifier must reject what we did not sign: a different body.
    assert!(
        verify(
            &parts,
            b"{\"a\":2}",
            SystemTime::now(),
            Mode::Strict(&known)
        )
        .is_err()
    );
}

#[tokio::test]
async fn function_errors_map_to_firehose_codes() {
    let fake = FakeLambda::start(vec![
        reply_with(
            200,
            &[("X-Amz-Function-Error", "Unhandled")],
            r#"{"errorMessage":"boom","errorType":"Error"}"#,
        ),
        reply_with(
            200,
            &[("X-Amz-Function-Error", "Unhandled")],
            r#"{"errorMessage":"2024-01-01T00:00:00Z abc Task timed out after 3.00 seconds"}"#,
        ),
    ])
    .await;
    let client = client(&fake);
    let error = client.invoke("f", Bytes::new()).await.unwrap_err();
    assert_eq!(
        error,
        InvokeError {
            code: "Lambda.FunctionError".into(),
            message:
                "The Lambda function was successfully invoked but it returned an error result."
                    .into(),
            retryable: true,
        }
    );
    let error = client.invoke("f", Bytes::new()).await.unwrap_err();
    assert_eq!(error.code, "Lambda.FunctionTimedOut");
}

#[tokio::test]
async fn http_errors_map_to_firehose_codes() {
    let cases: [(Reply, &str, bool); 7] = [
        (
            reply_with(
                429,
                &[(
                    "x-amzn-ErrorType",
                    "TooManyRequestsException:http://internal.amazon.com/",
                )],
                r#"{"Type":"User","message":"Rate exceeded"}"#,
            ),
            "Lambda.InvokeLimitExceeded",
            true,
        ),
        (
            reply_with(
                404,
                &[("x-amzn-ErrorType", "ResourceNotFoundException")],
                r#"{"Type":"User","Message":"Function not found"}"#,
            ),
            "Lambda.ResourceNotFound",
            false,
        ),
        (
            reply_with(403, &[("x-amzn-ErrorType", "AccessDeniedException")], "{}"),
            "Lambda.InvokeAccessDenied",
            false,
        ),
        (reply(404, ""), "Lambda.ResourceNotFound", false),
        (
            reply(503, "upstream gone"),
            "Lambda.ServiceUnavailable",
            true,
        ),
        (
            reply_with(
                502,
                &[("x-amzn-ErrorType", "KMSAccessDeniedException")],
                r#"{"message":"no kms"}"#,
            ),
            "Lambda.KMSAccessDeniedException",
            true,
        ),
        (
            reply_with(
                413,
                &[("x-amzn-ErrorType", "RequestTooLargeException")],
                "{}",
            ),
            "Lambda.RequestTooLargeException",
            false,
        ),
    ];
    for (reply, code, retryable) in cases {
        let fake = FakeLambda::start(vec![reply]).await;
        let error = client(&fake).invoke("f", Bytes::new()).await.unwrap_err();
        assert_eq!(
            (error.code.as_str(), error.retryable),
            (code, retryable),
            "{error:?}"
        );
    }
    let fake = FakeLambda::start(vec![reply_with(
        404,
        &[("x-amzn-ErrorType", "ResourceNotFoundException")],
        r#"{"message":"Function not found: f"}"#,
    )])
    .await;
    assert_eq!(
        client(&fake)
            .invoke("f", Bytes::new())
            .await
            .unwrap_err()
            .message,
        "Function not found: f"
    );
}

#[tokio::test]
async fn oversized_responses_are_function_errors() {
    let fake = FakeLambda::start(vec![reply(200, vec![b' '; RESPONSE_BYTES_MAX + 1])]).await;
    let error = client(&fake).invoke("f", Bytes::new()).await.unwrap_err();
    assert_eq!(error.code, "Lambda.FunctionError");
}

#[tokio::test]
async fn slow_functions_time_out() {
    let fake = FakeLambda::start(vec![Reply::Hang]).await;
    let client = client(&fake).with_invoke_timeout(Duration::from_millis(200));
    let error = client.invoke("f", Bytes::new()).await.unwrap_err();
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("Lambda.FunctionTimedOut", true)
    );
}

#[tokio::test]
async fn unreachable_endpoints_are_retryable() {
    // Bind then drop: nothing listens on the port afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = LambdaClient::new(&format!("http://127.0.0.1:{port}"), "us-east-1", None).unwrap();
    let error = client.invoke("f", Bytes::new()).await.unwrap_err();
    assert_eq!(
        (error.code.as_str(), error.retryable),
        ("Lambda.ServiceUnavailable", true)
    );
}

#[tokio::test]
async fn transform_retries_throttling_then_matches_records() {
    let fake = FakeLambda::start(vec![
        reply_with(
            429,
            &[("x-amzn-ErrorType", "TooManyRequestsException")],
            "{}",
        ),
        reply(
            200,
            json!({"records": [
                {"recordId": "1", "result": "Ok", "data": BASE64.encode("ONE"),
                 "metadata": {"partitionKeys": {"customerId": "c-1"}}},
                {"recordId": "2", "result": "Dropped"},
                {"recordId": "3", "result": "ProcessingFailed"},
            ]})
            .to_string(),
        ),
    ])
    .await;
    let inputs = [
        TransformInput {
            record_id: "1".into(),
            approximate_arrival_ms: 10,
            data: b"one",
            kinesis: None,
        },
        TransformInput {
            record_id: "2".into(),
            approximate_arrival_ms: 11,
            data: b"two",
            kinesis: None,
        },
        TransformInput {
            record_id: "3".into(),
            approximate_arrival_ms: 12,
            data: b"three",
            kinesis: None,
        },
    ];
    let payload = Bytes::from(invocation_payload(
        "inv-1",
        "arn:stream",
        None,
        "us-east-1",
        &inputs,
    ));
    let report = client(&fake)
        .transform_report(FUNCTION_ARN, 3, payload.clone(), &ids(&["1", "2", "3"]))
        .await;

    assert_eq!(report.attempts_made, 2);
    assert_eq!(
        report.records,
        vec![
            RecordOutcome::Ok {
                data: Bytes::from_static(b"ONE"),
                partition_keys: [("customerId".to_owned(), "c-1".to_owned())].into()
            },
            RecordOutcome::Dropped,
            RecordOutcome::failed(
                "Lambda.ProcessingFailedStatus",
                "ProcessingFailed status set for record"
            ),
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    // Both attempts carried the same event, as the fake received it.
    for request in &requests {
        let event: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(event["invocationId"], "inv-1");
        assert_eq!(
            event["records"][2],
            json!({"recordId": "3", "approximateArrivalTimestamp": 12, "data": "dGhyZWU="})
        );
    }
}

#[tokio::test]
async fn transform_gives_up_after_the_configured_retries() {
    let fake = FakeLambda::start(vec![reply_with(
        200,
        &[("X-Amz-Function-Error", "Unhandled")],
        "{}",
    )])
    .await;
    let report = client(&fake)
        .transform_report("f", 2, Bytes::new(), &ids(&["a", "b"]))
        .await;
    assert_eq!(report.attempts_made, 3);
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(
        report.records,
        vec![RecordOutcome::failed(codes::FUNCTION_ERROR, codes::FUNCTION_ERROR_MESSAGE); 2]
    );
}

#[tokio::test]
async fn transform_does_not_retry_what_retrying_cannot_fix() {
    let fake = FakeLambda::start(vec![reply_with(
        404,
        &[("x-amzn-ErrorType", "ResourceNotFoundException")],
        "{}",
    )])
    .await;
    let out = client(&fake)
        .transform("missing", 5, Bytes::new(), &ids(&["a"]))
        .await;
    assert_eq!(fake.requests().len(), 1);
    assert!(failed("Lambda.ResourceNotFound")(&out[0]));
}

#[tokio::test]
async fn transform_stops_when_the_backoff_budget_is_spent() {
    let fake = FakeLambda::start(vec![reply(503, "")]).await;
    let policy = RetryPolicy {
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(2),
        total_backoff_max: Duration::from_millis(5),
    };
    let client = client(&fake).with_retry_policy(policy);
    let report = client
        .transform_report("f", 100, Bytes::new(), &ids(&["a"]))
        .await;
    // Waits of 2 + 2 ms fit the 5 ms budget, a third would not.
    assert_eq!(report.attempts_made, 3);
}

#[tokio::test]
async fn transform_reports_garbage_and_wrong_ids_per_record() {
    let fake = FakeLambda::start(vec![
        reply(200, "this is not json"),
        reply(
            200,
            ok_body(&[("a", "Ok", b"A"), ("a", "Ok", b"A"), ("zzz", "Ok", b"Z")]),
        ),
    ])
    .await;
    let client = client(&fake);
    let out = client
        .transform("f", 3, Bytes::new(), &ids(&["a", "b"]))
        .await;
    assert!(
        out.iter().all(failed("Lambda.JsonProcessingException")),
        "{out:?}"
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "a malformed response is not retried"
    );

    let out = client
        .transform("f", 3, Bytes::new(), &ids(&["a", "b"]))
        .await;
    assert!(failed("Lambda.DuplicatedRecordId")(&out[0]), "{out:?}");
    assert!(failed("Lambda.MissingRecordId")(&out[1]), "{out:?}");
}

#[test]
fn endpoints_must_be_http_urls() {
    assert!(LambdaClient::new("ftp://example.com", "us-east-1", None).is_err());
    assert!(LambdaClient::new("not a url", "us-east-1", None).is_err());
    assert!(LambdaClient::new("https://lambda.us-east-1.amazonaws.com", "us-east-1", None).is_ok());
    let client = LambdaClient::new("http://127.0.0.1:3001/", "us-east-1", None).unwrap();
    assert_eq!(
        (client.host.as_str(), client.base_path.as_str()),
        ("127.0.0.1:3001", "")
    );
}
