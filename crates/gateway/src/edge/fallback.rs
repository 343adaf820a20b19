//! What both listeners answer for a path they do not serve (404) or a
//! method a path does not take (405): an OperationOutcome pointing to the
//! CapabilityStatement.

use axum::http::{Method, Uri};

use crate::error::GatewayError;

/// The router's fallback.
pub(crate) async fn unknown_route(uri: Uri) -> GatewayError {
    GatewayError::UnknownRoute(uri.path().to_owned())
}

/// The router's method-not-allowed fallback.
pub(crate) async fn method_not_allowed(method: Method) -> GatewayError {
    GatewayError::MethodNotAllowed(method.to_string())
}
