//! The minimum send rate of a connection: a client that stops reading its
//! responses, or reads a byte now and then, cannot hold a connection, its
//! task and a response's buffers for ever (issue 16, defect 5).
//!
//! The rule, per connection: while the server has response bytes it cannot
//! hand to the socket (a write or flush is blocked), each
//! [`SendRate::window`] must see at least [`SendRate::min_bytes_per_second`]
//! × window bytes accepted; otherwise the write fails with
//! [`std::io::ErrorKind::TimedOut`] and the connection is dropped. A
//! completed flush (the response is out) ends the measure: an idle
//! keep-alive connection is not a slow reader (the header read timeout
//! covers it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The minimum send rate (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendRate {
    /// How long a blocked write may take before the rate is measured, and
    /// the length of each measured window after that.
    pub(crate) window: Duration,
    /// Bytes per second the client must accept, averaged over a window.
    pub(crate) min_bytes_per_second: u64,
}

impl SendRate {
    fn bytes_per_window(self) -> u64 {
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        self.min_bytes_per_second.saturating_mul(millis) / 1000
    }
}

/// An I/O stream whose writes fail when the peer reads slower than a
/// [`SendRate`]; reads pass through.
pub(crate) struct Paced<S> {
    inner: S,
    rate: SendRate,
    /// Bytes accepted in the current window, when one is open (a write has
    /// been blocked since the last completed flush).
    window: Option<u64>,
    deadline: Pin<Box<Sleep>>,
    /// Counted once when the rate is not met.
    timeouts: Arc<AtomicU64>,
}

impl<S> Paced<S> {
    pub(crate) fn new(inner: S, rate: SendRate, timeouts: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            rate,
            window: None,
            deadline: Box::pin(tokio::time::sleep(rate.window)),
            timeouts,
        }
    }

    /// Called when the inner stream cannot take more now: opens a window if
    /// none is open, and at the window's end either opens the next one (the
    /// rate was met) or fails.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.window.is_none() {
            self.window = Some(0);
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.rate.window);
        }
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let sent = self.window.unwrap_or(0);
            if sent < self.rate.bytes_per_window() {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client reads slower than the minimum send rate",
                )));
            }
            self.window = Some(0);
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.rate.window);
        }
    }

    fn sent(&mut self, n: usize) {
        if let Some(sent) = &mut self.window {
            *sent = sent.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.sent(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.blocked(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                // Everything written is with the socket: the measure ends.
                self.window = None;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.blocked(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => match self.blocked(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            done => done,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;
    use tokio::io::AsyncWriteExt;

    fn rate() -> SendRate {
        SendRate {
            window: Duration::from_millis(200),
            min_bytes_per_second: 10_000,
        }
    }

    #[test]
    fn the_rate_is_counted_per_window() {
        assert_eq!(rate().bytes_per_window(), 2_000);
        let big = SendRate {
            window: Duration::MAX,
            min_bytes_per_second: u64::MAX,
        };
        assert_eq!(big.bytes_per_window(), u64::MAX / 1000);
    }

    /// A peer that reads nothing: the write fails after one window.
    #[tokio::test]
    async fn a_peer_that_never_reads_fails_the_write() {
        let (near, _far) = tokio::io::duplex(64);
        let timeouts = Arc::new(AtomicU64::new(0));
        let mut paced = Paced::new(near, rate(), timeouts.clone());
        let error = paced.write_all(&[0; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(timeouts.load(Ordering::Relaxed), 1);
    }

    /// A peer that reads fast enough is never cut, however long it takes.
    #[tokio::test]
    async fn a_peer_reading_at_the_rate_keeps_the_connection() {
        use tokio::io::AsyncReadExt;
        let (near, mut far) = tokio::io::duplex(64);
        let timeouts = Arc::new(AtomicU64::new(0));
        let slow = SendRate {
            min_bytes_per_second: 1_000,
            ..rate()
        };
        let mut paced = Paced::new(near, slow, timeouts.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0; 64];
            let mut total = 0;
            // 64 bytes every 5 ms: 12 800 B/s, far above the 1 000 B/s asked.
            while total < 8 * 1024 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                total += far.read(&mut buf).await.unwrap();
            }
        });
        paced.write_all(&[0; 8 * 1024]).await.unwrap();
        paced.flush().await.unwrap();
        reader.await.unwrap();
        assert_eq!(timeouts.load(Ordering::Relaxed), 0);
    }
}
