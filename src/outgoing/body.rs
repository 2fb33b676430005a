//! A body on its way out or in: counted into the entry's stats, bounded in size and, for
//! responses, in time.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error as HttpError;

use super::{ClientStats, HttpClient};

/// Which way a body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Sent,
    Received,
}

/// `inner`, failing once more than `max` bytes went through or `deadline` passed.
pub(super) struct Metered<B> {
    inner: B,
    direction: Direction,
    seen: u64,
    max: u64,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    client: Arc<HttpClient>,
}

impl<B> Metered<B> {
    pub(super) fn new(
        inner: B,
        direction: Direction,
        max: u64,
        deadline: Option<tokio::time::Instant>,
        client: Arc<HttpClient>,
    ) -> Self {
        Metered {
            inner,
            direction,
            seen: 0,
            max,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            client,
        }
    }

    fn too_big(&self) -> HttpError {
        match self.direction {
            Direction::Sent => HttpError::HttpRequestBodySize(Some(self.max)),
            Direction::Received => HttpError::HttpResponseBodySize(Some(self.max)),
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.seen > this.max {
            return Poll::Ready(Some(Err(this.too_big())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen = this.seen.saturating_add(n);
                    let stats = &this.client.stats;
                    let counter = match this.direction {
                        Direction::Sent => &stats.sent_bytes,
                        Direction::Received => &stats.received_bytes,
                    };
                    ClientStats::add(counter, n);
                    if this.seen > this.max {
                        return Poll::Ready(Some(Err(this.too_big())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let late = this
                    .deadline
                    .as_mut()
                    .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
                match late {
                    true => Poll::Ready(Some(Err(HttpError::HttpResponseTimeout))),
                    false => Poll::Pending,
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
