//! The inbox of one Lua state's thread (SPEC sections 10 and 12): futures that completed and
//! host calls from workers waiting for Lua. Event loops watch its descriptor (`funcs.fd()`),
//! readable while either is pending; a thread waiting inside funcs (`funcs.call`,
//! `future:wait`) waits on it to run host calls as they come.
//!
//! The descriptor is a pipe made on first use; while it is readable nothing more is written,
//! so a completion costs a lock and at most one `write` per poll.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::limits::Control;
use crate::sync::{spin, unpoison};
use crate::value::Value;

/// What the Lua side knows a host function by.
pub type HostKey = u64;

/// One call of a host function (see the host module), for the Lua thread to answer.
#[derive(Debug)]
pub struct HostCall {
    pub key: HostKey,
    /// `iface#func` (or the function's name at the root), for messages.
    pub name: Arc<str>,
    pub args: Vec<Value>,
    /// The result's WIT type when it holds resources (Lua defines them: the Lua side reads
    /// those places of the result by type).
    pub result: Option<wasmtime::component::Type>,
    /// `None` for a call answered on the thread that makes it.
    reply: Option<oneshot::Sender<Result<Value, String>>>,
    control: Option<Arc<Control>>,
}

impl HostCall {
    /// Gives the guest its answer (a Lua error's message for `Err`).
    pub fn answer(self, result: Result<Value, String>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    /// Whether nobody waits for the answer any more (the call timed out or was cancelled).
    pub fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(oneshot::Sender::is_closed)
            || self.control.as_ref().is_some_and(|c| c.is_canceled())
    }

    /// A call not yet given a way back (answered on the thread that makes it, or pushed).
    pub(crate) fn new(
        key: HostKey,
        name: Arc<str>,
        args: Vec<Value>,
        result: Option<wasmtime::component::Type>,
        control: Option<Arc<Control>>,
    ) -> HostCall {
        HostCall {
            key,
            name,
            args,
            result,
            reply: None,
            control,
        }
    }
}

#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<State>,
    changed: Condvar,
    /// How many host calls wait in `State::calls`, read without the lock by a spinning
    /// [`Signal::wait`].
    pending: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// Completions since the last [`Signal::take`].
    completed: usize,
    /// Host calls waiting for the Lua thread.
    calls: VecDeque<HostCall>,
    pipe: Option<(io::PipeReader, io::PipeWriter)>,
    /// Whether a byte is in the pipe.
    readable: bool,
    /// Threads in [`Signal::wait`].
    waiting: usize,
}

impl State {
    fn wake(&mut self, changed: &Condvar) {
        if !self.readable
            && let Some((_, w)) = &self.pipe
        {
            // A full pipe is readable already: the byte is not needed.
            let _ = (&*w).write(&[1]);
            self.readable = true;
        }
        if self.waiting > 0 {
            changed.notify_all();
        }
    }
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, State> {
        unpoison(self.state.lock())
    }

    /// A call completed: one more for [`Signal::take`] if `counted` (a future's).
    pub fn raise(&self, counted: bool) {
        let mut st = self.lock();
        if counted {
            st.completed += 1;
            st.wake(&self.changed);
        } else if st.waiting > 0 {
            self.changed.notify_all();
        }
    }

    /// A host call for the Lua thread; its answer comes through the receiver.
    pub fn push(&self, mut call: HostCall) -> oneshot::Receiver<Result<Value, String>> {
        let (reply, answer) = oneshot::channel();
        call.reply = Some(reply);
        let mut st = self.lock();
        st.calls.push_back(call);
        self.pending.store(st.calls.len(), Ordering::Release);
        st.wake(&self.changed);
        answer
    }

    /// The oldest host call waiting. One at a time: while its Lua function runs (and maybe
    /// waits inside funcs itself), the others stay in the inbox for that wait to answer.
    pub fn next_call(&self) -> Option<HostCall> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut st = self.lock();
        let call = st.calls.pop_front();
        self.pending.store(st.calls.len(), Ordering::Release);
        call
    }

    /// Waits until `done()` holds, a host call waits, or `until` passes (`false` then),
    /// [spinning](spin) first. `done` is also checked under this inbox's lock: it must not
    /// take a lock a completion holds while it calls [`Signal::raise`].
    pub fn wait(&self, done: impl Fn() -> bool, until: Option<Instant>) -> bool {
        let ready = || done() || self.pending.load(Ordering::Acquire) > 0;
        if spin(|| ready().then_some(())).is_some() {
            return true;
        }
        let mut st = self.lock();
        st.waiting += 1;
        let result = loop {
            if done() || !st.calls.is_empty() {
                break true;
            }
            match until {
                None => st = unpoison(self.changed.wait(st)),
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break false;
                    }
                    st = unpoison(self.changed.wait_timeout(st, left)).0;
                }
            }
        };
        st.waiting -= 1;
        result
    }

    /// The descriptor to watch for reading (made on first use; readable at once if
    /// something is pending).
    ///
    /// # Errors
    /// When the process cannot make a pipe (out of descriptors).
    pub fn fd(&self) -> io::Result<RawFd> {
        let mut st = self.lock();
        if st.pipe.is_none() {
            let (r, w) = io::pipe()?;
            for fd in [r.as_raw_fd(), w.as_raw_fd()] {
                set_nonblocking(fd)?;
            }
            st.pipe = Some((r, w));
            if st.completed > 0 || !st.calls.is_empty() {
                st.readable = false;
                st.wake(&self.changed);
            }
        }
        Ok(st
            .pipe
            .as_ref()
            .map(|(r, _)| r.as_raw_fd())
            .expect("made above"))
    }

    /// Clears the descriptor and returns the completions since the last call (host calls
    /// stay for [`Signal::calls`]; the descriptor is readable again while they wait).
    pub fn take(&self) -> usize {
        let mut st = self.lock();
        if st.readable
            && let Some((r, _)) = &st.pipe
        {
            let mut buf = [0u8; 64];
            while matches!((&*r).read(&mut buf), Ok(n) if n > 0) {}
        }
        st.readable = false;
        if !st.calls.is_empty() {
            st.wake(&self.changed);
        }
        std::mem::take(&mut st.completed)
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
