//! `imgtool`: pulls OCI images into a local store, unpacks them into runtime bundles,
//! and turns bundles back into images. One file per command in `commands/`; the pieces
//! they are built from (store, layers, registry, bundles) live in the library.

mod commands;

use clap::{CommandFactory, Parser};

/// True when the error is a write to a closed pipe (`imgtool inspect x | head -1`).
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() {
    imgtool::test_switches::answer_probe();
    // Usage errors exit 2 (clap), --help and --version 0.
    // `imgtool generate-docs DIR`: man pages and completions for hack/install.sh, from
    // the clap definition (hidden: never in the help).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match cli_docs::handle(&raw, commands::Cli::command) {
        Ok(true) => return,
        Ok(false) => {}
        Err(err) => {
            eprintln!("imgtool: {err:#}");
            std::process::exit(1);
        }
    }
    let cli = commands::Cli::parse();
    if let Err(err) = cli.run() {
        if broken_pipe(&err) {
            // Whoever read our output has gone: end as `cat` does, by SIGPIPE (Rust
            // ignores it by default, which made every write fail instead).
            // SAFETY: restoring a signal's default action and raising it have no
            // preconditions; nothing else runs in this process at this point.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            std::process::exit(141);
        }
        if err.downcast_ref::<commands::AlreadyReported>().is_none() {
            // One line a user can act on: the error and its causes, outermost first.
            eprintln!("imgtool: {}", commands::error_line(&err));
        }
        std::process::exit(1);
    }
}
