//! `imgtool`: pulls OCI images into a local store, unpacks them into runtime bundles,
//! and turns bundles back into images. One file per command in `commands/`; the pieces
//! they are built from (store, layers, registry, bundles) live in the library.

mod commands;

use clap::{CommandFactory, Parser};

fn main() {
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
        // One line a user can act on: the error and its causes, outermost first.
        let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
        eprintln!("imgtool: {}", chain.join(": "));
        std::process::exit(1);
    }
}
