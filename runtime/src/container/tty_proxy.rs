//! `run -t` / `exec -t` in a terminal with no `--console-socket`: the runtime itself takes
//! the pseudoterminal master (through a socket of its own) and relays between it and the
//! caller's terminal, in raw mode, resizing the container's terminal when ours changes.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

/// Checks that there is a terminal to relay a container's to when no `--console-socket`
/// is given: our stderr, stdout or stdin, or else our controlling terminal (`/dev/tty`).
/// runc refuses to go on without one ("open /dev/tty: no such device or address"): a
/// container terminal relayed to pipes is not what the caller asked for.
pub fn require_host_terminal() -> Result<()> {
    let fds = [libc::STDERR_FILENO, libc::STDOUT_FILENO, libc::STDIN_FILENO];
    // SAFETY: isatty only inspects the descriptor.
    if fds.iter().any(|&fd| unsafe { libc::isatty(fd) } == 1) {
        return Ok(());
    }
    std::fs::File::open("/dev/tty")
        .map(drop)
        .context("no terminal to relay to: open /dev/tty")
}

/// A listening console socket and the thread that will receive the master from it.
pub struct ConsoleReceiver {
    path: PathBuf,
    handle: Option<JoinHandle<Result<OwnedFd>>>,
}

impl ConsoleReceiver {
    /// Listens on `path` (absolute; removed again when the master has arrived).
    pub fn listen(path: &Path) -> Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        let handle = std::thread::spawn(move || receive_master(&listener));
        Ok(Self {
            path: path.to_path_buf(),
            handle: Some(handle),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the master sent during create.
    pub fn master(mut self) -> Result<OwnedFd> {
        let handle = self
            .handle
            .take()
            .context("the terminal master was already taken")?;
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the console receiver panicked"))?
    }
}

impl Drop for ConsoleReceiver {
    /// The socket file goes whether create succeeded or not.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn receive_master(listener: &UnixListener) -> Result<OwnedFd> {
    let (stream, _) = listener.accept().context("accept on the console socket")?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .context("receive the terminal master")?;
    for c in msg.cmsgs().context("read the control message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // Size it before the process can ask (exec's starts before we relay).
                copy_window_size(fd);
                // SAFETY: the kernel just installed this fd in our table; we own it now.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    anyhow::bail!("no terminal master arrived on the console socket")
}

/// Our terminal in raw mode for as long as this lives.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> Self {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(orig) = &saved {
            let mut raw = orig.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        Self { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, orig);
        }
    }
}

/// Copies our window size to the container's terminal.
pub fn copy_window_size(master: RawFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write one winsize struct we own.
    unsafe {
        if libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Starts relaying: our stdin to the master (a detached thread: it ends with the process),
/// and the master to our stdout (joined by the caller once the process has exited, so all
/// its output is written before we exit).
pub fn relay(master: OwnedFd) -> Result<JoinHandle<()>> {
    let mut to_master = std::fs::File::from(master.try_clone().context("dup the master")?);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from_master = std::fs::File::from(master);
    Ok(std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buf = [0u8; 4096];
        // Reading a master whose slave side is closed fails with EIO: that is the end.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    }))
}

/// A running relay between our terminal and a container's.
pub struct Relay {
    master: RawFd,
    output: JoinHandle<()>,
    _raw: RawMode,
}

impl Relay {
    /// Takes the master from the receiver, puts our terminal in raw mode, copies the
    /// window size and starts copying.
    pub fn start(receiver: ConsoleReceiver) -> Result<Self> {
        let master = receiver.master()?;
        let raw_fd = master.as_raw_fd();
        copy_window_size(raw_fd);
        let raw = RawMode::enter();
        let output = relay(master)?;
        Ok(Self {
            master: raw_fd,
            output,
            _raw: raw,
        })
    }

    pub fn master_fd(&self) -> RawFd {
        self.master
    }

    /// Lets the output drain (up to a second: a process left holding the terminal must
    /// not keep us waiting), then restores our terminal.
    pub fn finish(self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !self.output.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
