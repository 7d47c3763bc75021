//! Writing to stdout and stderr the way a Go program (runc) does: a reader that goes away
//! (`runtime state ID | head -1`, `runtime events ID | head`) ends the process with
//! SIGPIPE, silently, instead of a panic. Rust ignores SIGPIPE and `println!` panics on
//! EPIPE; Go's runtime raises SIGPIPE when a write to fd 1 or 2 fails with EPIPE, and
//! returns EPIPE for any other descriptor. The runtime keeps SIGPIPE ignored for sockets
//! and pipes of its own (console sockets, notify sockets) and routes every write to its
//! standard streams through here.

use std::fmt;
use std::io::{self, Write};

/// Writes one line to stdout, flushed; ends the process on a broken pipe.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        out.write_all(b"\n")?;
        out.flush()
    });
    check(result);
}

/// Writes one line to stderr; ends the process on a broken pipe. Other errors are
/// ignored: failing to report must not turn into a second failure.
pub fn err_line(text: &str) {
    let mut err = io::stderr().lock();
    let result = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
    check(result);
}

fn check(result: io::Result<()>) {
    if let Err(e) = result {
        if e.kind() == io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
    }
}

/// Ends the process the way a Go program ends on EPIPE at stdout: killed by SIGPIPE, so a
/// shell sees status 141 and prints nothing.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action of SIGPIPE and raising it; no memory involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached unless SIGPIPE is blocked; exit with the status a shell would show.
    std::process::exit(128 + libc::SIGPIPE);
}

/// `println!` that ends the process quietly when stdout's reader has gone.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
