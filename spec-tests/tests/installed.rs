//! What `hack/install.sh` installed (into `$INSTALLED_PREFIX`): the static release
//! binaries the tests drive, their man pages and completions. Run by
//! hack/test-installed.sh, which installs into a prefix and then runs these and a smoke
//! set of the spec tests against the installed binaries; in the plain `cargo test` run
//! they are ignored (counted as such in the summary), having no installation to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

fn prefix() -> PathBuf {
    PathBuf::from(
        std::env::var_os("INSTALLED_PREFIX")
            .expect("INSTALLED_PREFIX names the prefix hack/install.sh installed into"),
    )
}

/// The ELF program header types of a 64-bit little-endian executable.
fn program_headers(path: &Path) -> (u16, Vec<u32>) {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..4], b"\x7fELF", "{} is not ELF", path.display());
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let e_type = u16_at(16);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    let types = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    (e_type, types)
}

/// The subcommands a binary's `--help` lists (under clap's `Commands:`, or `COMMANDS:`
/// in the runtime's help, laid out as runc's).
fn subcommands(bin: &Path) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip_while(|l| !l.eq_ignore_ascii_case("commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
#[ignore = "run by hack/test-installed.sh against the prefix hack/install.sh installed into"]
fn the_installed_binaries_are_static_and_are_the_ones_under_test() {
    const PT_INTERP: u32 = 3;
    const ET_EXEC: u16 = 2;
    let prefix = prefix();
    for (name, under_test) in [
        ("runtime", spec_tests::bins::runtime()),
        ("imgtool", spec_tests::bins::imgtool()),
    ] {
        let bin = prefix.join("bin").join(name);
        assert_eq!(
            std::fs::canonicalize(&under_test).unwrap(),
            std::fs::canonicalize(&bin).unwrap(),
            "the tests drive {} rather than the installed {name}",
            under_test.display()
        );
        let (e_type, headers) = program_headers(&bin);
        assert_eq!(e_type, ET_EXEC, "{name} is not a non-PIE executable");
        assert!(
            !headers.contains(&PT_INTERP),
            "{name} asks for a dynamic loader: not static"
        );
        let out = Command::new(&bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{name} --version: {out:?}");
    }
    // A release build: no test switches (its negative controls are recorded as not run).
    assert!(!spec_tests::bins::runtime_has_test_switches());
}

#[test]
#[ignore = "run by hack/test-installed.sh against the prefix hack/install.sh installed into"]
fn every_command_has_a_man_page_and_the_completions_load() {
    let prefix = prefix();
    for name in ["runtime", "imgtool"] {
        let bin = prefix.join("bin").join(name);
        let man = prefix.join("share/man/man1");
        let subs = subcommands(&bin);
        assert!(
            subs.len() >= 10,
            "{name}: subcommands from --help: {subs:?}"
        );
        for page in
            std::iter::once(name.to_string()).chain(subs.iter().map(|s| format!("{name}-{s}")))
        {
            let path = man.join(format!("{page}.1"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                text.contains(&format!(".TH {page} 1")),
                "{}",
                path.display()
            );
        }
        // bash loads the completion and registers it for the command.
        let bash = prefix.join("share/bash-completion/completions").join(name);
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && complete -p {name}", bash.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}'s bash completion: {out:?}");
        let text = std::fs::read_to_string(&bash).unwrap();
        for sub in &subs {
            assert!(
                text.contains(sub.as_str()),
                "{name}'s bash completion lacks {sub}"
            );
        }
        for other in [
            prefix.join(format!("share/zsh/site-functions/_{name}")),
            prefix.join(format!("share/fish/vendor_completions.d/{name}.fish")),
        ] {
            let text = std::fs::read_to_string(&other)
                .unwrap_or_else(|e| panic!("{}: {e}", other.display()));
            assert!(text.contains(name), "{}", other.display());
        }
    }
}
