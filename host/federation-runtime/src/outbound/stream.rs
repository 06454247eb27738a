//! A response whose body an adapter reads line by line (`outbound-stream`), for
//! wrappers that stream a run's progress as NDJSON.

use futures::StreamExt;
use tracing::Instrument;

use super::span::{record_error, record_response};
use crate::bindings::HttpError;

/// A response body as it arrives.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, HttpError>> + Send>>;

/// A response being read line by line. Holds the adapter's concurrency slot and the
/// client span until it is dropped; the body counts against the same cap as a whole
/// response.
pub struct LineStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: BodyStream,
    /// Received bytes not yet returned as lines.
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    /// Body bytes received so far (counted against `cap`).
    read: u64,
    ended: bool,
    cap: u64,
    span: tracing::Span,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl LineStream {
    pub(super) fn new(
        status: u16,
        headers: Vec<(String, String)>,
        body: BodyStream,
        cap: u64,
        span: tracing::Span,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        LineStream {
            status,
            headers,
            body,
            buffer: Vec::new(),
            scanned: 0,
            read: 0,
            ended: false,
            cap,
            span,
            _slot: slot,
        }
    }

    /// The next line of the body without its line ending; `None` at the end.
    pub async fn read_line(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(at) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                return Ok(Some(line));
            }
            self.scanned = self.buffer.len();
            if self.ended {
                self.scanned = 0;
                return Ok((!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer)));
            }
            match self.body.next().instrument(self.span.clone()).await {
                Some(Ok(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.cap {
                        let error = HttpError::TooLarge(self.cap);
                        record_error(&self.span, &error);
                        self.ended = true;
                        self.buffer.clear();
                        return Err(error);
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
                Some(Err(error)) => {
                    record_error(&self.span, &error);
                    self.ended = true;
                    self.buffer.clear();
                    return Err(error);
                }
                None => self.ended = true,
            }
        }
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        record_response(&self.span, self.status, self.read as usize);
    }
}
