//! A seccomp agent for `linux.seccomp.listenerPath`: accepts the runtime's connection,
//! receives the container process state and the notify fd (SCM_RIGHTS), records the
//! state in a file and closes the fd. With the fd closed, every notified syscall fails
//! with ENOSYS, which the container can print — so a row sees both what the agent got and
//! whether the filter was installed.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A running agent; `stop` ends it.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `socket`; each connection's payload is appended to `record` as one line,
    /// and the number of fds that came with it to `record` + `.fds`.
    pub fn start(socket: &Path, record: PathBuf) -> anyhow::Result<Self> {
        let listener = UnixListener::bind(socket)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                if !matches!(poll(&mut fds, PollTimeout::from(100u16)), Ok(n) if n > 0) {
                    continue;
                }
                let Ok((conn, _)) = listener.accept() else {
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let (payload, nfds) = receive(conn.as_raw_fd());
                append(&record, &payload);
                append(&record.with_extension("fds"), &nfds.to_string());
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn append(path: &Path, line: &str) {
    let mut old = std::fs::read_to_string(path).unwrap_or_default();
    old.push_str(line);
    old.push('\n');
    let _ = std::fs::write(path, old);
}

/// One message: the payload as text and how many fds came with it (closed here).
fn receive(fd: RawFd) -> (String, usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let (len, nfds) = match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
        Ok(msg) => {
            let mut n = 0;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        n += fds.len();
                        for f in fds {
                            // SAFETY: the kernel just installed this fd for us; we own it.
                            drop(unsafe { OwnedFd::from_raw_fd(f) });
                        }
                    }
                }
            }
            (msg.bytes, n)
        }
        Err(e) => return (format!("recvmsg failed: {e}"), 0),
    };
    (String::from_utf8_lossy(&buf[..len]).into_owned(), nfds)
}
