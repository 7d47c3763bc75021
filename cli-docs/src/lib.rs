//! Man pages and shell completions made from a program's clap definition, so that they
//! say exactly what the binary accepts. `runtime` and `imgtool` call [`generate`] from a
//! hidden `generate-docs DIR` command (never shown in their help, never parsed by clap:
//! runc's command list stays as it is); `hack/install.sh` runs it with the binary it
//! installs.
//!
//! Layout under DIR, as distributions install them:
//! - `man/man1/NAME.1` and `man/man1/NAME-SUBCOMMAND.1` (one page per subcommand, as
//!   git and podman do);
//! - `completions/bash/NAME`, `completions/zsh/_NAME`, `completions/fish/NAME.fish`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// The hidden command name the binaries answer to.
pub const COMMAND: &str = "generate-docs";

/// If `args` (the whole argv) is `PROGRAM generate-docs DIR`, writes the man pages and
/// completions of `cmd` into DIR and returns true; otherwise returns false.
pub fn handle(args: &[std::ffi::OsString], cmd: impl FnOnce() -> Command) -> Result<bool> {
    match args {
        [_, name, dir] if name == COMMAND => {
            generate(cmd(), Path::new(dir))?;
            Ok(true)
        }
        [_, name, ..] if name == COMMAND => {
            anyhow::bail!("usage: {COMMAND} DIR (writes DIR/man/man1 and DIR/completions)")
        }
        _ => Ok(false),
    }
}

/// Writes the man pages of `cmd` and its subcommands and its bash, zsh and fish
/// completions under `dir`.
pub fn generate(mut cmd: Command, dir: &Path) -> Result<()> {
    cmd.build();
    let name = cmd.get_name().to_string();
    let man = dir.join("man").join("man1");
    std::fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    write_man(&cmd, &name, &man)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let page = format!("{name}-{}", sub.get_name());
        // clap names are `&'static str` without its `string` feature; this runs once per
        // page in a process that exits right after.
        let sub = sub.clone().name(&*Box::leak(page.clone().into_boxed_str()));
        write_man(&sub, &page, &man)?;
    }
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let d = dir.join("completions").join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let path = d.join(file);
        let mut out = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut out);
    }
    Ok(())
}

fn write_man(cmd: &Command, page: &str, dir: &Path) -> Result<()> {
    let path = dir.join(format!("{page}.1"));
    let mut out = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Command {
        Command::new("demo")
            .about("A demo program")
            .arg(
                clap::Arg::new("root")
                    .long("root")
                    .help("Where state lives"),
            )
            .subcommand(Command::new("run").about("Runs a thing"))
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn pages_and_completions_are_written() {
        let dir = tempfile::tempdir().unwrap();
        generate(demo(), dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("man/man1/demo.1")).unwrap();
        assert!(
            page.contains(".TH demo 1") && page.contains("root"),
            "{page}"
        );
        let run = std::fs::read_to_string(dir.path().join("man/man1/demo-run.1")).unwrap();
        assert!(run.contains("Runs a thing"), "{run}");
        assert!(!dir.path().join("man/man1/demo-secret.1").exists());
        let bash = std::fs::read_to_string(dir.path().join("completions/bash/demo")).unwrap();
        assert!(bash.contains("--root") && bash.contains("run"), "{bash}");
        assert!(dir.path().join("completions/zsh/_demo").exists());
        assert!(dir.path().join("completions/fish/demo.fish").exists());
    }

    #[test]
    fn only_the_hidden_command_is_handled() {
        let dir = tempfile::tempdir().unwrap();
        let argv = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(!handle(&argv(&["demo", "run"]), demo).unwrap());
        assert!(handle(&argv(&["demo", COMMAND]), demo).is_err());
        let d = dir.path().to_string_lossy().into_owned();
        assert!(handle(&argv(&["demo", COMMAND, &d]), demo).unwrap());
        assert!(dir.path().join("man/man1/demo.1").exists());
    }
}
