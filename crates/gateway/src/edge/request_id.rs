//! The id of the request being handled (`X-Request-Id`) and the id of the
//! cross-border exchange it belongs to (`X-Correlation-ID`), set by
//! [`super::observe`] for the whole of the request's task.

tokio::task_local! {
    pub(crate) static REQUEST_ID: String;
    pub(crate) static CORRELATION_ID: String;
}

/// The correlation id of the request being handled: the caller's
/// `X-Correlation-ID`, or the request id when it sent none.
pub(crate) fn current_correlation_id() -> Option<String> {
    CORRELATION_ID.try_with(Clone::clone).ok()
}

/// The header.
pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

/// Whether a received `X-Correlation-ID` is carried on: 1 to 128 visible
/// characters of `[A-Za-z0-9._:-]` (a UUID, an OpenNCP message id, a
/// country's own form); anything else is replaced by the request id, so
/// no free text reaches a peer or an audit record.
pub(crate) fn is_correlation_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id of the request being handled, if called while handling one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
