//! The fast path of a healthy link, on Linux: the bytes go from one socket
//! to the other through a pipe with splice(2), never copied into the
//! proxy's memory. A user-space proxy otherwise reads every chunk into a
//! buffer and writes it out again — two more copies per byte, which
//! halved a bulk transfer on loopback (`xlreg bench faults`).
//!
//! The pump stays here only while its link's rule is healthy: it waits
//! for the source to be readable *or* the rule to change, and leaves at
//! once on a change, with the pipe empty (each chunk spliced in is
//! spliced out before it waits again), so the rule path takes over on an
//! open connection without losing or reordering a byte.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::rules::LinkRule;

/// Bytes moved per splice: the pipe's capacity (asked for; the kernel
/// may give less, see `/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: i32 = 1 << 20;

/// A non-blocking pipe, the kernel buffer between the two sockets.
pub(super) struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

impl Pipe {
    /// `None` if the process cannot make one now (e.g. out of
    /// descriptors): the pump then copies as before.
    pub fn new() -> Option<Pipe> {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both were just created and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own descriptor; a refusal keeps the default.
        let cap = match unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) } {
            n if n > 0 => n as usize,
            _ => 64 * 1024,
        };
        Some(Pipe { r, w, cap })
    }
}

/// Why [`healthy`] returned.
pub(super) enum Left {
    /// The rule changed (it is marked seen): look at it again.
    RuleChanged,
    /// The source ended (or failed, which ends it too).
    Eof,
    /// The destination failed or the rule's sender is gone: stop.
    Stop,
}

fn splice(from: RawFd, to: RawFd, len: usize) -> std::io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: plain syscall on descriptors that stay open for the call;
    // null offsets (sockets and pipes have none).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Move bytes from `r` to `w` through `pipe` until the rule changes, the
/// source ends, or the destination fails.
pub(super) async fn healthy(
    r: &OwnedReadHalf,
    w: &OwnedWriteHalf,
    pipe: &Pipe,
    rule: &mut watch::Receiver<LinkRule>,
) -> Left {
    let (src, dst): (&tokio::net::TcpStream, &tokio::net::TcpStream) = (r.as_ref(), w.as_ref());
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let (pipe_r, pipe_w) = (pipe.r.as_raw_fd(), pipe.w.as_raw_fd());
    loop {
        tokio::select! {
            biased;
            changed = rule.changed() => {
                return if changed.is_err() { Left::Stop } else { Left::RuleChanged };
            }
            ready = r.readable() => if ready.is_err() { return Left::Eof },
        }
        // Move all there is before waiting again (one wakeup, many
        // chunks, at most 64 so that other tasks get their turn); a rule
        // change is looked at between chunks.
        for _ in 0..64 {
            // The pipe is empty here, so EAGAIN can only mean the socket.
            let n = match src.try_io(Interest::READABLE, || splice(src_fd, pipe_w, pipe.cap)) {
                Ok(0) => return Left::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Left::Eof,
            };
            let mut left = n;
            while left > 0 {
                match dst.try_io(Interest::WRITABLE, || splice(pipe_r, dst_fd, left)) {
                    Ok(m) => left -= m,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if w.writable().await.is_err() {
                            return Left::Stop;
                        }
                    }
                    Err(_) => return Left::Stop,
                }
            }
            if rule.has_changed().unwrap_or(true) {
                break;
            }
        }
    }
}
