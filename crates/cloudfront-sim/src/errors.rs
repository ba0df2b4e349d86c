//! The error documents CloudFront answers with: code, HTTP status and message.
//!
//! Codes and statuses follow the CloudFront 2020-05-31 service model (the same model the AWS SDKs
//! are generated from); errors the model does not list (throttling, 5xx, authentication) follow
//! the AWS common errors.

use axum::http::StatusCode;

/// One error answer of the API, rendered as `<ErrorResponse><Error>…</Error></ErrorResponse>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The `<Code>`, e.g. `NoSuchDistribution`.
    pub code: &'static str,
    /// The HTTP status.
    pub status: StatusCode,
    /// The human-readable `<Message>`.
    pub message: String,
}

impl ApiError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    /// `Sender` for client faults (4xx), `Receiver` for service faults (5xx).
    pub fn fault_type(&self) -> &'static str {
        if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// 403: the caller may not act on this distribution.
    pub fn access_denied() -> Self {
        Self::new("AccessDenied", StatusCode::FORBIDDEN, "Access denied.")
    }

    /// 403: the request carries no AWS signature.
    pub fn missing_authentication_token() -> Self {
        Self::new(
            "MissingAuthenticationToken",
            StatusCode::FORBIDDEN,
            "Missing Authentication Token",
        )
    }

    /// 404: the distribution id is unknown.
    pub fn no_such_distribution() -> Self {
        Self::new(
            "NoSuchDistribution",
            StatusCode::NOT_FOUND,
            "The specified distribution does not exist.",
        )
    }

    /// 404: the distribution tenant (or another entity the operation names) does not exist.
    pub fn entity_not_found(what: &str) -> Self {
        Self::new(
            "EntityNotFound",
            StatusCode::NOT_FOUND,
            format!("The specified {what} does not exist."),
        )
    }

    /// 404: the invalidation id is unknown for this distribution.
    pub fn no_such_invalidation() -> Self {
        Self::new(
            "NoSuchInvalidation",
            StatusCode::NOT_FOUND,
            "The specified invalidation does not exist.",
        )
    }

    /// 400: a POST without a body.
    pub fn missing_body() -> Self {
        Self::new(
            "MissingBody",
            StatusCode::BAD_REQUEST,
            "This operation requires a body. Ensure that the body is present and the Content-Type header is set.",
        )
    }

    /// 400: the body is not the XML document the operation takes.
    pub fn malformed_xml(detail: impl std::fmt::Display) -> Self {
        Self::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            format!("1 validation error detected: {detail}"),
        )
    }

    /// 400: `Quantity` differs from the number of `Items`.
    pub fn inconsistent_quantities() -> Self {
        Self::new(
            "InconsistentQuantities",
            StatusCode::BAD_REQUEST,
            "The value of Quantity and the size of Items don't match.",
        )
    }

    /// 413: more paths in one batch than CloudFront takes.
    pub fn batch_too_large(limit: usize) -> Self {
        Self::new(
            "BatchTooLarge",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Invalidation batch specified is too large: at most {limit} paths are allowed in one request."
            ),
        )
    }

    /// 400: an argument (a path, a marker, MaxItems, a caller reference) is not valid.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", StatusCode::BAD_REQUEST, message)
    }

    /// 400: a new batch would take the distribution over an in-progress quota.
    pub fn too_many_invalidations_in_progress(message: impl Into<String>) -> Self {
        Self::new(
            "TooManyInvalidationsInProgress",
            StatusCode::BAD_REQUEST,
            message,
        )
    }

    /// 409: the caller reference was already used for a batch with other paths.
    ///
    /// The service model has no shape for this code; 409 is the status the model gives every
    /// other `…AlreadyExists` error of CloudFront.
    pub fn invalidation_batch_already_exists() -> Self {
        Self::new(
            "InvalidationBatchAlreadyExists",
            StatusCode::CONFLICT,
            "The CallerReference was already used for an invalidation batch with different paths.",
        )
    }

    /// 400 `InvalidArgument`: what users of the live service report for a reused caller reference.
    pub fn caller_reference_reused() -> Self {
        Self::invalid_argument(
            "Your request contains a caller reference that was used for a previous invalidation batch for the same distribution.",
        )
    }

    /// 400: request rate exceeded; the SDKs retry it with back-off.
    pub fn throttling() -> Self {
        Self::new("Throttling", StatusCode::BAD_REQUEST, "Rate exceeded")
    }

    /// 500: an internal failure of the service.
    pub fn internal_failure() -> Self {
        Self::new(
            "InternalFailure",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// 503: the service is temporarily unavailable.
    pub fn service_unavailable() -> Self {
        Self::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable. Please try again later.",
        )
    }

    /// 404: a path that is no CloudFront operation.
    pub fn unknown_operation() -> Self {
        Self::new(
            "UnknownOperation",
            StatusCode::NOT_FOUND,
            "The requested operation is not supported by this endpoint.",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}
