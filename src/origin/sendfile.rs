//! A TCP connection that sends segment bodies with sendfile(2).
//!
//! hyper writes a response as a list of slices (vectored writes): the head it
//! formatted, then the body's `Bytes`. Where a slice lies in a segment the store keeps
//! in a sealed file (`crate::sealed`: a file that can no longer change), this wrapper
//! sends it with sendfile from that file, so the kernel passes the file's pages to the
//! socket instead of copying the bytes; the other slices go out with `sendmsg` as before. The head is sent with
//! `MSG_MORE` when a file follows, so head and body leave in full packets, as nginx's
//! `tcp_nopush` does. The bytes on the wire are the same either way: the sealed file
//! cannot change, and it is read at the slice's own offset.
//!
//! Reads, flushes and shutdown are the stream's own.
//!
//! A response can also ask for socket options through the connection's
//! [`SocketTuning`] (hyper owns the stream while the response is made); the stream
//! applies them before its next write, which is the response's head.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

use crate::sealed;

/// Most slices one `sendmsg` takes (Linux's `UIO_MAXIOV` is 1024; hyper passes few).
const MAX_SLICES: usize = 64;

pub(crate) struct SendfileStream {
    stream: TcpStream,
    tuning: SocketTuning,
}

impl SendfileStream {
    /// Sends on `stream`, applying what `tuning` asks before each write.
    pub(crate) fn new(stream: TcpStream, tuning: SocketTuning) -> Self {
        Self { stream, tuning }
    }
}

/// A response's say in its connection's socket options, applied by the connection's
/// [`SendfileStream`] before its next write.
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketTuning {
    /// The send buffer asked for, in bytes; 0 when nothing is asked.
    send_buffer: Arc<AtomicUsize>,
}

impl SocketTuning {
    /// Asks for a socket send buffer of `bytes` (`SO_SNDBUF`: the kernel doubles it for
    /// its bookkeeping, and stops growing it by itself).
    pub(crate) fn set_send_buffer(&self, bytes: usize) {
        self.send_buffer.store(bytes.max(1), Ordering::Relaxed);
    }

    /// The send buffer asked for since the last call, if any.
    fn take_send_buffer(&self) -> Option<usize> {
        // A plain load first: this runs before every write, and almost never finds one.
        if self.send_buffer.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(self.send_buffer.swap(0, Ordering::Relaxed)).filter(|&bytes| bytes > 0)
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &this.stream;
        if let Some(bytes) = this.tuning.take_send_buffer() {
            if let Err(e) = set_send_buffer(stream.as_raw_fd(), bytes) {
                debug!(bytes, error = %e, "Could not set a connection's send buffer.");
            }
        }
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let fd = stream.as_raw_fd();
            // `try_io` clears the readiness when the closure would block, so the next
            // `poll_write_ready` waits for the socket again.
            match stream.try_io(Interest::WRITABLE, || write_slices(fd, bufs)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Writes `bufs` in order, as far as the socket takes them without blocking: runs of
/// ordinary slices with one `sendmsg`, a slice in a sealed file with `sendfile`.
/// Returns the bytes written, or `WouldBlock` if none could be.
fn write_slices(socket: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut written = 0;
    let mut i = 0;
    while i < bufs.len() {
        if bufs[i].is_empty() {
            i += 1;
            continue;
        }
        let (sent, wanted) = match sealed::find(&bufs[i]) {
            Some((file, offset)) => {
                let sent = send_file(socket, &file, offset, bufs[i].len());
                i += 1;
                (sent, bufs[i - 1].len())
            }
            None => {
                let end = bufs[i..]
                    .iter()
                    .take(MAX_SLICES)
                    .position(|b| sealed::find(b).is_some())
                    .map_or((i + MAX_SLICES).min(bufs.len()), |n| i + n);
                let more = end < bufs.len();
                let run = &bufs[i..end];
                i = end;
                (
                    send_slices(socket, run, more),
                    run.iter().map(|b| b.len()).sum(),
                )
            }
        };
        match sent {
            Ok(n) => {
                written += n;
                if n < wanted {
                    break;
                }
            }
            // What was written before counts; the error comes back at the next call.
            Err(_) if written > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

fn send_slices(socket: RawFd, run: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid; its iovec array points at `run`, which
    // `IoSlice` lays out as `iovec`s and which outlives the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = run.as_ptr().cast_mut().cast::<libc::iovec>();
    message.msg_iovlen = run.len();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: a valid socket and message; the result is checked.
    let sent = unsafe { libc::sendmsg(socket, &message, flags) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

fn set_send_buffer(socket: RawFd, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket; the option's value is a c_int that outlives the call,
    // with its size passed alongside; the result is checked.
    let result = unsafe {
        libc::setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn send_file(
    socket: RawFd,
    file: &sealed::SealedFile,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
    // SAFETY: a valid socket and an open file; `offset` is a local the call advances.
    let sent = unsafe { libc::sendfile(socket, file.as_fd().as_raw_fd(), &mut offset, len) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A response head, a sealed body and an ordinary trailer, written as hyper writes
    /// them, arrive whole and in order, however much the socket takes at a time.
    #[tokio::test]
    async fn slices_in_sealed_files_and_in_memory_arrive_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sealed = sealed::seal(&body).expect("sealed");
        assert!(sealed::find(&sealed).is_some());
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n");
        let tail = Bytes::from_static(b"-- end --");
        let mut expected = head.to_vec();
        expected.extend_from_slice(&body[100..]);
        expected.extend_from_slice(&tail);

        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            socket.read_to_end(&mut received).await.expect("read");
            received
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut stream = SendfileStream::new(stream, SocketTuning::default());
        let parts = [head, sealed.slice(100..), tail];
        let mut slices: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        while !slices.is_empty() {
            let io: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
            let mut n = stream.write_vectored(&io).await.expect("write");
            assert!(n > 0);
            while n > 0 {
                let first = slices[0];
                if n >= first.len() {
                    n -= first.len();
                    slices.remove(0);
                } else {
                    slices[0] = &first[n..];
                    n = 0;
                }
            }
        }
        stream.shutdown().await.expect("shutdown");
        let received = reader.await.expect("reader");
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "the bytes differ");
    }

    fn send_buffer(stream: &TcpStream) -> usize {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an open socket; `value` and `len` outlive the call.
        let result = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(result, 0, "SO_SNDBUF: {}", io::Error::last_os_error());
        usize::try_from(value).expect("a size")
    }

    /// A send buffer asked for through the tuning is set before the next write, once.
    #[tokio::test]
    async fn a_send_buffer_asked_for_is_set_before_the_next_write() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            socket.read_to_end(&mut received).await.expect("read");
            received
        });
        let tuning = SocketTuning::default();
        let mut stream = SendfileStream::new(
            TcpStream::connect(addr).await.expect("connect"),
            tuning.clone(),
        );
        let before = send_buffer(&stream.stream);
        // Small enough to be under every Linux's `net.core.wmem_max`.
        let asked = 48 << 10;
        assert_ne!(before, 2 * asked);
        tuning.set_send_buffer(asked);
        assert_eq!(
            send_buffer(&stream.stream),
            before,
            "nothing before a write"
        );
        stream.write_all(b"head").await.expect("write");
        // Linux doubles the value for its bookkeeping.
        assert_eq!(send_buffer(&stream.stream), 2 * asked);
        assert_eq!(tuning.take_send_buffer(), None, "applied once");
        stream.shutdown().await.expect("shutdown");
        assert_eq!(reader.await.expect("reader"), b"head");
    }
}
