//! A connection-level idle timeout.
//!
//! hyper 1.x has no idle timeout of its own: its HTTP/1 header read timeout starts only
//! once hyper-util's auto builder has seen enough bytes to pick a protocol, and HTTP/2
//! has none. A client that connects and sends nothing, or stops reading a response,
//! would hold a socket and a task for ever. This wrapper fails the connection's I/O once
//! neither a read nor a write has moved a byte for the configured time, and hyper then
//! closes the connection.
//!
//! A handler that holds a request open without I/O (an LL-HLS blocking playlist reload)
//! must finish well within the idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    fn touch(&mut self) {
        // Only a timestamp: the timer is moved lazily when it fires (see `poll_idle`), so
        // a busy connection does not touch the timer wheel on every read.
        self.last_activity = Instant::now();
    }

    /// Called when the inner I/O is pending: resolves to an error once idle too long.
    fn poll_idle<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last_activity + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for longer than the idle timeout",
                )));
            }
            // There was traffic since the timer was set: move it and wait again.
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.poll_idle(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, IDLE);
        let started = std::time::Instant::now();
        let mut buf = [0u8; 8];
        let err = server.read(&mut buf).await.err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= IDLE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn traffic_keeps_the_connection_alive() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, IDLE);
        let writer = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(IDLE / 2).await;
                client.write_all(b"x").await?;
            }
            Ok::<_, io::Error>(client)
        });
        let mut buf = [0u8; 1];
        for _ in 0..6 {
            // Six reads over 3 × IDLE: each byte resets the idle clock.
            assert_eq!(server.read(&mut buf).await.map_err(|e| e.kind()), Ok(1));
        }
        let _client = writer.await;
        let err = server.read(&mut buf).await.err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_out() {
        let (_client, server) = tokio::io::duplex(16);
        let mut server = IdleTimeout::new(server, IDLE);
        // The duplex buffer fills after 16 bytes and the write stays pending.
        let err = server.write_all(&[0u8; 64]).await.err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
    }
}
