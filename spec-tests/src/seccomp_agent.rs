//! A seccomp agent for the SCMP_ACT_NOTIFY tests: it listens on a unix socket for what the
//! runtime sends a profile's `listenerPath` (the container process state as JSON, and the
//! listener fd by SCM_RIGHTS, as the runtime spec describes), keeps the states, and
//! answers every notified system call with ENOMEDIUM ("No medium found"), an errno no
//! call in the tests returns by itself, until the process behind the fd is gone.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::Value;
use tempfile::TempDir;

/// The errno the agent answers with.
pub const ANSWER: i32 = libc::ENOMEDIUM;

pub struct SeccompAgent {
    dir: TempDir,
    states: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Default for SeccompAgent {
    fn default() -> Self {
        Self::start()
    }
}

impl SeccompAgent {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spec-seccomp-agent-")
            .tempdir()
            .expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("agent.sock")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let states = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (states, stop) = (states.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if let Some((state, fd)) = receive(conn.as_raw_fd()) {
                                states.lock().unwrap().push(state);
                                std::thread::spawn(move || answer(fd));
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            dir,
            states,
            stop,
            accept: Some(accept),
        }
    }

    /// The path for the profile's `listenerPath`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// The container process states received so far.
    pub fn states(&self) -> Vec<Value> {
        self.states.lock().unwrap().clone()
    }
}

impl Drop for SeccompAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One message: the state JSON and the listener fd.
fn receive(conn: RawFd) -> Option<(Value, OwnedFd)> {
    // The connection is blocking whatever the listener is.
    // SAFETY: fcntl on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(conn, libc::F_GETFL);
        libc::fcntl(conn, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(conn, &mut iov, Some(&mut cmsg), MsgFlags::empty()).ok()?;
    let mut fd = None;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this descriptor for us.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let len = msg.bytes;
    let state = serde_json::from_slice(&buf[..len]).ok()?;
    Some((state, fd?))
}

/// Answers every notification on `fd` with ANSWER until its processes are gone.
fn answer(fd: OwnedFd) {
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return;
        }
        if pfd.revents & libc::POLLIN == 0 {
            continue;
        }
        // SAFETY: zeroed seccomp_notif is what SECCOMP_IOCTL_NOTIF_RECV expects.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills in req.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
            continue;
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -ANSWER,
            flags: 0,
        };
        // SAFETY: the ioctl reads resp; a target that died meanwhile makes it fail, which
        // changes nothing here.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}
