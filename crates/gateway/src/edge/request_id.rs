//! The id of the request being handled (`X-Request-Id`), set by
//! [`super::observe`] for the whole of the request's task.

tokio::task_local! {
    pub(crate) static REQUEST_ID: String;
}

/// The id of the request being handled, if called while handling one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
