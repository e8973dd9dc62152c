//! Turning SDK errors into messages for people: the AWS error type and message as the
//! server sent them, and a hint when the fix is obvious.

use std::fmt;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// An API call that failed, ready to print.
#[derive(Debug)]
pub struct ApiError {
    /// The AWS error type (`ResourceNotFoundException`), when the server answered with one.
    pub code: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ApiError {}

/// The lines printed for a failed client command.
pub fn render_error(err: &anyhow::Error) -> String {
    let mut text = format!("error: {err}");
    // Context added with `.context(..)` sits above the cause; show the whole chain.
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    if let Some(hint) = err
        .chain()
        .find_map(|e| e.downcast_ref::<ApiError>())
        .and_then(|e| e.hint.as_deref())
    {
        text.push_str(&format!("\nhint: {hint}"));
    }
    text
}

fn hint_for(code: &str, message: &str) -> Option<String> {
    let hint = match code {
        "ResourceNotFoundException" if message.contains("Shard") || message.contains("shard") => {
            "`millstream stream describe STREAM` lists the stream's shards"
        }
        "ResourceNotFoundException" => {
            "`millstream stream list` shows the streams that exist; `millstream stream create NAME` makes one"
        }
        "ResourceInUseException" => {
            "the stream already exists or is busy (CREATING, UPDATING or DELETING); `millstream stream describe NAME` shows its status"
        }
        "LimitExceededException" => {
            "a quota was reached: the server's `shard_limit`, or too many scaling operations in a row"
        }
        "ProvisionedThroughputExceededException" => {
            "slow down, or add shards with `millstream stream scale STREAM COUNT`"
        }
        "ExpiredIteratorException" => "shard iterators expire after 5 minutes: start over",
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "AccessDeniedException" => {
            "this server verifies signatures: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to credentials listed in its configuration"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// Converts an SDK failure of a call to `endpoint`.
pub fn api_error<E, R>(err: SdkError<E, R>, endpoint: &str) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    match &err {
        SdkError::ServiceError(context) => {
            let service = context.err();
            let code = service.code().map(str::to_string);
            let message = service
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| "(no message)".to_string());
            let hint = code.as_deref().and_then(|c| hint_for(c, &message));
            ApiError {
                code,
                message,
                hint,
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ApiError {
            code: None,
            message: format!("could not reach {endpoint}: {}", DisplayErrorContext(&err)),
            hint: Some(
                "start a server with `millstream serve`, or point --endpoint (or MILLSTREAM_ENDPOINT) at one"
                    .to_string(),
            ),
        },
        SdkError::ResponseError(_) => ApiError {
            code: None,
            message: format!(
                "unexpected response from {endpoint}: {}",
                DisplayErrorContext(&err)
            ),
            hint: Some("is --endpoint a Kinesis API endpoint?".to_string()),
        },
        _ => ApiError {
            code: None,
            message: DisplayErrorContext(&err).to_string(),
            hint: None,
        },
    }
}

/// The AWS error type of an SDK failure, if the server sent one.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(context) => context.err().code(),
        _ => None,
    }
}

/// `.api(endpoint)?` on an SDK call's result.
pub trait ApiResult<T> {
    /// # Errors
    /// The call's failure as an `ApiError`.
    fn api(self, endpoint: &str) -> Result<T, ApiError>;
}

impl<T, E, R> ApiResult<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
{
    fn api(self, endpoint: &str) -> Result<T, ApiError> {
        self.map_err(|e| api_error(e, endpoint))
    }
}
