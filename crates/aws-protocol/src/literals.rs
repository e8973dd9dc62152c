//! Every AWS literal the wire layer speaks: header names, content types and error codes.
//! Nothing outside this module spells these strings.

/// `Content-Type` of awsJson1.1 requests and responses.
pub const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
/// `Content-Type` of the CBOR variant (AWS SDK for Java v1/v2 by default).
pub const CONTENT_TYPE_CBOR_1_1: &str = "application/x-amz-cbor-1.1";
/// `Content-Type` of event-stream responses (SubscribeToShard).
pub const CONTENT_TYPE_EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Header naming the operation: `X-Amz-Target: Kinesis_20131202.PutRecords`.
pub const HEADER_AMZ_TARGET: &str = "x-amz-target";
/// Request id header on every response.
pub const HEADER_REQUEST_ID: &str = "x-amzn-requestid";
/// Error code header on error responses (Rust/Java SDKs read it before `__type`).
pub const HEADER_ERROR_TYPE: &str = "x-amzn-errortype";
/// Extended request id (opaque) AWS sends on POST responses.
pub const HEADER_AMZ_ID_2: &str = "x-amz-id-2";
/// SigV4 request timestamp, `yyyymmddThhmmssZ`.
pub const HEADER_AMZ_DATE: &str = "x-amz-date";
/// Fallback timestamp header when `X-Amz-Date` is absent.
pub const HEADER_DATE: &str = "date";
/// Session token of temporary credentials.
pub const HEADER_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
/// Payload hash some signers send (`UNSIGNED-PAYLOAD` or hex SHA-256).
pub const HEADER_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
/// Standard authorization header.
pub const HEADER_AUTHORIZATION: &str = "authorization";
/// Standard content type header.
pub const HEADER_CONTENT_TYPE: &str = "content-type";

/// SigV4 algorithm name, in the `Authorization` header and `X-Amz-Algorithm`.
pub const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Last element of every SigV4 credential scope.
pub const SIGV4_TERMINATOR: &str = "aws4_request";
/// Presigned-URL query parameters.
pub const QUERY_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
pub const QUERY_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
pub const QUERY_AMZ_SIGNATURE: &str = "X-Amz-Signature";
pub const QUERY_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub const QUERY_AMZ_DATE: &str = "X-Amz-Date";
pub const QUERY_AMZ_EXPIRES: &str = "X-Amz-Expires";
pub const QUERY_AMZ_SECURITY_TOKEN: &str = "X-Amz-Security-Token";

/// Error-envelope member carrying the error code.
pub const ERROR_TYPE_MEMBER: &str = "__type";

/// `__type` codes the protocol layer produces itself (service errors live in `api-*`).
pub mod codes {
    pub const SERIALIZATION_EXCEPTION: &str = "SerializationException";
    pub const UNKNOWN_OPERATION_EXCEPTION: &str = "UnknownOperationException";
    pub const VALIDATION_EXCEPTION: &str = "ValidationException";
    pub const MISSING_AUTHENTICATION_TOKEN_EXCEPTION: &str = "MissingAuthenticationTokenException";
    pub const INCOMPLETE_SIGNATURE_EXCEPTION: &str = "IncompleteSignatureException";
    pub const INVALID_SIGNATURE_EXCEPTION: &str = "InvalidSignatureException";
    pub const UNRECOGNIZED_CLIENT_EXCEPTION: &str = "UnrecognizedClientException";
    pub const ACCESS_DENIED_EXCEPTION: &str = "AccessDeniedException";
    pub const THROTTLING_EXCEPTION: &str = "ThrottlingException";
    pub const INTERNAL_FAILURE: &str = "InternalFailure";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}
