//! Handing a file descriptor to another process over an AF_UNIX socket (SCM_RIGHTS), as
//! runc hands out a pidfd or a terminal master.

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// Connects to `socket` and sends `fd` with `name` as the message body.
pub fn send_fd(socket: &Path, fd: RawFd, name: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let fds = [fd];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("cannot send a file descriptor to {}", socket.display()))?;
    Ok(())
}
