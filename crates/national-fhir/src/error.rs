//! What can go wrong asking a national server; `ehds-gateway`'s error
//! table maps each to a status (503, 504, 502) and an OperationOutcome.

/// A failure of the national server or of its answer (never the caller's).
#[derive(Debug, thiserror::Error)]
pub enum NationalError {
    /// The server could not be reached (connection refused, TLS refused,
    /// reset before an answer).
    #[error("the national server is unreachable: {0}")]
    Unreachable(String),
    /// The circuit breaker is open: the server failed repeatedly and is
    /// not asked until a probe succeeds.
    #[error("the national server is not asked for now (circuit breaker open)")]
    CircuitOpen,
    /// No answer within the configured budget.
    #[error("the national server did not answer within {0} s")]
    Timeout(u64),
    /// An HTTP status that is neither success nor not-found.
    #[error("the national server answered HTTP {0}")]
    Status(u16),
    /// The answer is not FHIR JSON (not `application/fhir+json` or
    /// `application/json`, or not parseable under the FHIR JSON rules).
    #[error("the national server's answer is not FHIR JSON: {0}")]
    NotFhir(String),
    /// The answer is FHIR but not what was asked for (a resource of
    /// another type, a Bundle that is not a search set or document).
    #[error("the national server's answer is not what was asked for: {0}")]
    Unexpected(String),
    /// The answer is about another patient than the one asked about:
    /// nothing of it is passed on.
    #[error("the national server answered about another patient")]
    OtherPatient,
    /// OAuth 2.0 client credentials (`crate::oauth`): the authorization
    /// server refused the gateway's client assertion (RFC 6749 §5.2, e.g.
    /// `invalid_client`) or answered something that is not a token response
    /// (§5.1), or the server's SMART configuration names no usable token
    /// endpoint; at start-up, the private key could not be loaded. Never
    /// carries the access token or the assertion.
    #[error("OAuth client credentials: {0}")]
    Credentials(String),
    /// The client could not be built (certificate files): start-up only.
    #[error("national server TLS: {0}")]
    Transport(#[from] ehds_transport::TransportError),
}

impl NationalError {
    /// A request to the national server (or its token endpoint) that failed
    /// on its way: too slow for `budget`, else not reached. Told without
    /// the URL: its query holds the patient identifier.
    pub(crate) fn transport(error: reqwest::Error, budget: std::time::Duration) -> Self {
        if error.is_timeout() {
            Self::Timeout(budget.as_secs())
        } else {
            Self::Unreachable(error.without_url().to_string())
        }
    }
}
