//! HTTP/1.1 pipelining on one [`Connection`]: N requests written with one
//! write, then their N responses read in order (wrk's `pipeline.lua`: a
//! batch at a time, not a sliding window, so a batch costs one write and as
//! few reads as the responses need).
//!
//! Every request of a batch gets exactly one outcome, in order: a response,
//! or the error that ended the batch. A server that answers k of N and then
//! closes (or says `Connection: close` after response k) gives k responses
//! and N-k failures (`connection closed before response`), so successes +
//! failures always equal the requests written. The rules of a single
//! exchange hold: bytes after the N-th response, or a response that does
//! not keep the connection alive, close it; a batch that fails on a reused
//! connection before any response byte arrived (the server's idle close)
//! is written once more on a fresh one, only for idempotent methods.
//!
//! The reads and writes are the exact calls `conn.rs`'s `exchange` makes
//! (the same plain ops, [`bounded`], the pooled read buffer and the
//! [`ReadCursor`]), so the stream type can change under both alike.

use std::pin::{pin, Pin};
use std::time::Instant;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::time::Sleep;

use super::conn::{bounded, may_resend, ReadBufs};
use super::reader::{ReadCursor, Step};
use super::tls::TlsKind;
use super::{Connection, HttpError, Method, Millis, ResponseInfo, ResponseSink};

/// How a batch's read ended.
struct BatchEnd {
    /// The error that ended it before every response arrived.
    error: Option<HttpError>,
    /// Whether any response byte arrived (an idle-closed connection sends none).
    got_bytes: bool,
    /// Responses reported.
    answered: usize,
}

impl Connection {
    /// Write `batch` (`count` serialized requests, all `method`) at once
    /// and read `count` responses in order into `sink`. `outcome` is called
    /// exactly `count` times, in order, as each response completes or
    /// fails; the caller reads the clock there to time each request from
    /// `started` (the batch's send). The whole batch is bounded by the
    /// request timeout counted from `started`.
    pub async fn send_pipelined<B: IoBuf + Clone>(
        &mut self,
        started: Instant,
        batch: &B,
        count: usize,
        method: Method,
        sink: &mut impl ResponseSink,
        mut outcome: impl FnMut(Result<ResponseInfo, HttpError>),
    ) {
        let timeout = self.cfg.request_timeout;
        let timed_out = HttpError::Timeout(Millis::from_duration(timeout));
        let at = monoio::time::Instant::from(started + timeout);
        let mut deadline = match self.deadline.take() {
            Some(mut d) => {
                d.as_mut().reset(at);
                d
            }
            None => Box::pin(monoio::time::sleep_until(at)),
        };
        let mut delivered = 0usize;
        let mut retried = false;
        let error = loop {
            let reused = match self.ready(deadline.as_mut(), timed_out).await {
                Ok(reused) => reused,
                Err(e) => break Some(e),
            };
            let end = self
                .pipeline_exchange(
                    batch.clone(),
                    count,
                    method,
                    sink,
                    deadline.as_mut(),
                    timed_out,
                    &mut outcome,
                )
                .await;
            delivered = delivered.saturating_add(end.answered);
            let Some(e) = end.error else {
                break None;
            };
            self.stream = None;
            log::debug!("connection to {} closed: {e}", self.endpoint);
            // Nothing of this batch was answered yet (no `outcome` called):
            // the same rule as a single request's one retry.
            if !retried && may_resend(e, reused, end.got_bytes, method) {
                retried = true;
                continue;
            }
            break Some(e);
        };
        self.deadline = Some(deadline);
        // The requests left without a response share the error that ended
        // the batch: each one is counted.
        if let Some(e) = error {
            for _ in delivered..count {
                outcome(Err(e));
            }
        }
    }

    /// Write the batch and read its responses on the current stream,
    /// reporting each complete one. Returns how it ended; on an error the
    /// responses not reported are the caller's to fail.
    #[allow(clippy::too_many_arguments)]
    async fn pipeline_exchange<B: IoBuf>(
        &mut self,
        batch: B,
        count: usize,
        method: Method,
        sink: &mut impl ResponseSink,
        mut deadline: Pin<&mut Sleep>,
        timeout: HttpError,
        report: &mut impl FnMut(Result<ResponseInfo, HttpError>),
    ) -> BatchEnd {
        let Connection { stream, parser, .. } = self;
        let failed = |error| BatchEnd {
            error: Some(error),
            got_bytes: false,
            answered: 0,
        };
        let Some(stream) = stream.as_mut() else {
            return failed(HttpError::ClosedBeforeResponse);
        };
        let fd = stream.as_raw_fd();
        let ((written, _batch), timed_out) = {
            let write = pin!(stream.write_all(batch));
            bounded(write, deadline.as_mut(), fd).await
        };
        if timed_out {
            return failed(timeout);
        }
        if let Err(e) = written {
            return failed(HttpError::from_io(&e));
        }

        let mut buf = ReadBufs::take();
        let mut cursor = ReadCursor::new();
        let mut got_bytes = false;
        // Bytes after the last complete response, not parsed yet.
        let mut pending = false;
        // The peer's FIN arrived: nothing more can come.
        let mut eof = false;
        let mut answered = 0usize;
        let mut close = false;
        let error = 'responses: loop {
            if answered == count {
                break None;
            }
            if eof {
                break Some(HttpError::ClosedBeforeResponse);
            }
            parser.start(method == Method::Head);
            let mut complete = false;
            if pending {
                match cursor.advance(parser, &mut buf, sink) {
                    Err(e) => break Some(e),
                    Ok(Step::Done { leftover }) => {
                        pending = leftover;
                        complete = true;
                    }
                    Ok(Step::More) => pending = false,
                }
            }
            while !complete {
                if let Err(e) = cursor.make_room(&mut buf) {
                    break 'responses Some(e);
                }
                let len = buf.len();
                let ((n, slice), timed_out) = {
                    let read = pin!(stream.read(buf.slice_mut(len..)));
                    bounded(read, deadline.as_mut(), fd).await
                };
                buf = slice.into_inner();
                match n {
                    _ if timed_out => break 'responses Some(timeout),
                    Err(e) => break 'responses Some(HttpError::from_io(&e)),
                    Ok(0) => {
                        eof = true;
                        if let Err(e) = parser.eof(sink) {
                            break 'responses Some(e);
                        }
                        // As `exchange`: a close-delimited body ended by a
                        // FIN without TLS close_notify may be truncated.
                        if stream.unclean_eof() {
                            break 'responses Some(HttpError::Tls(TlsKind::NoCloseNotify));
                        }
                        break;
                    }
                    Ok(_) => got_bytes = true,
                }
                match cursor.advance(parser, &mut buf, sink) {
                    Err(e) => break 'responses Some(e),
                    Ok(Step::Done { leftover }) => {
                        pending = leftover;
                        complete = true;
                    }
                    Ok(Step::More) => {}
                }
            }
            answered += 1;
            report(Ok(ResponseInfo {
                status: parser.status(),
                body_len: parser.body_len(),
            }));
            if eof || !parser.keep_alive() {
                // The server ends the connection here: the rest of the
                // batch was written but will never be answered.
                close = true;
                if answered < count {
                    break Some(HttpError::ClosedBeforeResponse);
                }
            }
        };
        ReadBufs::give_back(buf);
        if error.is_none() && (close || pending) {
            // Not kept alive, or bytes no request of the batch asked for.
            self.stream = None;
            log::debug!("connection to {} closed: not kept alive", self.endpoint);
        }
        BatchEnd {
            error,
            got_bytes: got_bytes || answered > 0,
            answered,
        }
    }
}
