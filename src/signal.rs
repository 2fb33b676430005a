//! The event-loop signal of one Lua state (SPEC section 12): a file descriptor that becomes
//! readable when one of its futures completes, for loops (luv, cqueues, nginx) to watch
//! instead of blocking on a guest; `funcs.poll()` clears it and counts what completed.
//!
//! Completions only count until the descriptor exists (`funcs.fd()` makes the pipe); after
//! that, the first completion since the last poll writes one byte, so a completion costs an
//! atomic add and at most one `write` per poll.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sync::unpoison;

#[derive(Debug, Default)]
pub struct Signal {
    /// Completions since the last [`Signal::take`].
    pending: AtomicUsize,
    pipe: OnceLock<(io::PipeReader, io::PipeWriter)>,
    /// Serializes making the pipe.
    making: std::sync::Mutex<()>,
}

impl Signal {
    /// One more completion: the descriptor becomes readable if it was not.
    pub fn raise(&self) {
        if self.pending.fetch_add(1, Ordering::AcqRel) == 0
            && let Some((_, w)) = self.pipe.get()
        {
            // A full pipe is readable already: the byte is not needed.
            let _ = (&*w).write(&[1]);
        }
    }

    /// The descriptor to watch for reading (made on first use; readable at once if
    /// completions are pending).
    ///
    /// # Errors
    /// When the process cannot make a pipe (out of descriptors).
    pub fn fd(&self) -> io::Result<RawFd> {
        if let Some((r, _)) = self.pipe.get() {
            return Ok(r.as_raw_fd());
        }
        let _making = unpoison(self.making.lock());
        if self.pipe.get().is_none() {
            let (r, w) = io::pipe()?;
            for fd in [r.as_raw_fd(), w.as_raw_fd()] {
                set_nonblocking(fd)?;
            }
            if self.pending.load(Ordering::Acquire) > 0 {
                let _ = (&w).write(&[1]);
            }
            let _ = self.pipe.set((r, w));
        }
        Ok(self.pipe.get().expect("the pipe was just made").0.as_raw_fd())
    }

    /// Clears the descriptor and returns the completions since the last call. The pipe is
    /// drained before the count is taken: a completion racing with this call either is
    /// counted now or leaves the descriptor readable, never neither.
    pub fn take(&self) -> usize {
        if let Some((r, _)) = self.pipe.get() {
            let mut buf = [0u8; 64];
            while matches!((&*r).read(&mut buf), Ok(n) if n > 0) {}
        }
        self.pending.swap(0, Ordering::AcqRel)
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor this module owns; F_GETFL/F_SETFL touch only its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
