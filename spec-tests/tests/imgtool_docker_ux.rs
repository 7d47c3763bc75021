//! What docker users expect of imgtool's command line: `login`/`logout` writing docker's
//! config.json (read back by skopeo), `history`, `inspect --format`, `gc --dry-run`,
//! `images` SIZE as docker counts it (the layers unpacked), options shown only on the
//! commands where they act, usage errors exiting 2, and output to a closed pipe ending
//! quietly instead of a panic.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Value};
use spec_tests::bins;
use spec_tests::images::{self, Compression, Image, Layer};
use spec_tests::imgtool_store::{error_line, inspected, put_image, StoreEnv};
use spec_tests::registry::Registry;
use spec_tests::registry_variants::{TokenServer, VariantRegistry};

fn login(env: &StoreEnv, args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = env
        .cmd()
        .arg("login")
        .args(args)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn login_and_logout_write_dockers_config_json() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    Image::busybox().write_layout(dir.path(), "t");
    reg.push_with_skopeo(&format!("oci:{}:t", dir.path().display()), "private:1");
    let env = StoreEnv::new();
    let config = env.dir.path().join("docker/config.json");
    // Other settings in the file survive.
    std::fs::write(&config, r#"{"experimental":"enabled","auths":{}}"#).unwrap();
    let reference = format!("{}/private:1", reg.host());

    // Negative control: without credentials the pull is refused.
    assert!(env.pull_err(&[&reference]).contains("unauthorized"));

    let out = login(&env, &["-u", "alice", &reg.host()], "wrong");
    let err = error_line("login", &[], &out);
    assert!(
        err.contains("unauthorized") && err.contains("alice"),
        "{err}"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains(&reg.host()),
        "nothing saved on failure: {text}"
    );

    let out = login(&env, &["-u", "alice", &reg.host()], "s3cret");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let saved: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(
        saved["auths"][reg.host()]["auth"],
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );
    assert_eq!(saved["experimental"], "enabled");
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.pull_ok(&[&reference]);
    // skopeo reads the same file.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&config)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = env.run(&["logout", &reg.host()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Removing login credentials for {}\n", reg.host())
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(saved["auths"].get(reg.host()).is_none(), "{saved}");
    assert!(env
        .pull_err(&["--no-unpack", &reference])
        .contains("unauthorized"));
    let out = env.run(&["logout", &reg.host()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Not logged in to {}\n", reg.host())
    );

    // A registry behind a bearer-token service (the Docker Hub flow).
    let tokens = TokenServer::start("bob", "pw", &["private"]);
    let treg = VariantRegistry::with_token_auth(&tokens);
    let out = login(&env, &["-u", "bob", &treg.host()], "nope");
    assert_eq!(out.status.code(), Some(1));
    let out = login(&env, &["-u", "bob", &treg.host()], "pw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image with known content: the size docker would report for each layer (the
/// regular files' bytes plus the symlinks' targets).
fn sized_image() -> (Image, Vec<u64>) {
    let mut l = Layer::new();
    l.dir("data", 0o755)
        .file("data/a", &vec![b'a'; 123_456], 0o644)
        .file("data/b", &vec![b'b'; 7_000], 0o644)
        .symlink("data/link", "a");
    let busybox = images::busybox_layer();
    let size_of = |tar: &[u8]| -> u64 {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                match e.header().entry_type() {
                    tar::EntryType::Regular => e.header().size().unwrap(),
                    tar::EntryType::Symlink => {
                        e.link_name_bytes().map(|l| l.len() as u64).unwrap_or(0)
                    }
                    _ => 0,
                }
            })
            .sum()
    };
    let extra = l.finish();
    let sizes = vec![size_of(&busybox), size_of(&extra)];
    let mut image = Image::new(
        vec![(busybox, Compression::Gzip), (extra, Compression::Zstd)],
        &["sh"],
    );
    image.config["Labels"] = json!({"team": "spec"});
    (image, sizes)
}

#[test]
fn history_inspect_format_gc_dry_run_and_images_size() {
    let env = StoreEnv::new();
    env.run(&["images"]);
    let (image, sizes) = sized_image();
    put_image(&env.store(), &image, "localhost/sized:1");
    let total: u64 = sizes.iter().sum();

    let rows: Value =
        serde_json::from_slice(&env.run(&["images", "--format", "json"]).stdout).unwrap();
    assert_eq!(rows[0]["size"], total, "docker's SIZE: the layers unpacked");
    let table = String::from_utf8(env.run(&["images"]).stdout).unwrap();
    // docker's units.HumanSizeWithPrecision(size, 3), for a size in the MB range.
    let mb = total as f64 / 1e6;
    assert!((1.0..1000.0).contains(&mb), "{total}");
    let decimals = if mb >= 100.0 {
        0
    } else if mb >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{mb:.decimals$}");
    let human = format!("{}MB", text.trim_end_matches('0').trim_end_matches('.'));
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(" {human}")),
        "{table} ({total} bytes = {human})"
    );

    let history = String::from_utf8(env.run(&["history", "localhost/sized:1"]).stdout).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{history}"
    );
    assert_eq!(lines.len(), 3, "a row per history entry: {history}");
    let inspect = inspected(env.run(&["inspect", "localhost/sized:1"]).stdout);
    let id = inspect["Id"].as_str().unwrap();
    assert!(
        lines[1].starts_with(&id[7..19]),
        "newest row shows the ID: {history}"
    );
    assert!(lines[2].starts_with("<missing>"), "{history}");
    let json_rows: Value = serde_json::from_slice(
        &env.run(&["history", "--format", "json", "localhost/sized:1"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json_rows[0]["size"], sizes[1]);
    assert_eq!(json_rows[1]["size"], sizes[0]);

    let format = |t: &str| {
        let out = env.run(&["inspect", "--format", t, "localhost/sized:1"]);
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(format("{{.Config.Cmd}}"), "[sh]\n");
    assert_eq!(format("{{json .Config.Labels}}"), "{\"team\":\"spec\"}\n");
    assert_eq!(format("{{index .RepoTags 0}}"), "localhost/sized:1\n");
    assert_eq!(
        format("{{.Architecture}}/{{.Os}}"),
        format!("{}/linux\n", images::host_arch())
    );
    assert_eq!(format("{{.Size}}"), format!("{total}\n"));
    let out = env.run(&[
        "inspect",
        "--format",
        "{{printf \"%s\" .Id}}",
        "localhost/sized:1",
    ]);
    let err = error_line("inspect", &[], &out);
    assert!(
        err.contains("unsupported template function \"printf\""),
        "{err}"
    );

    let blobs = || {
        std::fs::read_dir(env.store().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    env.run(&["rm", "localhost/sized:1"]);
    let before = blobs();
    let dry = String::from_utf8(env.run(&["gc", "--dry-run"]).stdout).unwrap();
    assert!(dry.starts_with("would remove 4 blobs"), "{dry}");
    assert_eq!(blobs(), before, "a dry run removes nothing");
    let done = String::from_utf8(env.run(&["gc"]).stdout).unwrap();
    assert!(done.starts_with("removed 4 blobs"), "{done}");
    assert_eq!(blobs(), before - 4);
}

#[test]
fn options_are_shown_where_they_act_and_usage_errors_exit_2() {
    let help = |cmd: &str| {
        let out = Command::new(bins::imgtool())
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    for cmd in ["bundle", "commit", "images", "save", "export", "unbundle"] {
        let h = help(cmd);
        for opt in ["--config", "--registries-conf", "--authfile"] {
            assert!(!h.contains(opt), "{cmd} --help shows {opt}: {h}");
        }
    }
    for cmd in ["pull", "push", "login"] {
        let h = help(cmd);
        assert!(
            h.contains("--registries-conf") && h.contains("--authfile"),
            "{cmd}: {h}"
        );
    }
    assert!(help("logout").contains("--authfile"));
    let code = |args: &[&str]| {
        Command::new(bins::imgtool())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(code(&["bundle", "--config", "x", "img", "dir"]), Some(2));
    assert_eq!(code(&["pull"]), Some(2));
    assert_eq!(code(&["no-such-command"]), Some(2));
    // Negative control: a command that runs and fails exits 1.
    let env = StoreEnv::new();
    assert_eq!(
        env.run(&["inspect", "localhost/none:1"]).status.code(),
        Some(1)
    );
}

/// `imgtool inspect A B` prints what `docker image inspect A B` prints: one JSON array of
/// all the images (an array for one image too), `--format` once per image, one line
/// each; a name not found among several does not stop the others: they are printed,
/// then one error line per missing name, exit 1 (`[]` when none was found).
#[test]
fn inspect_of_several_images_is_one_array_and_a_missing_one_fails_after_the_rest() {
    let env = StoreEnv::new();
    put_image(&env.store(), &Image::busybox(), "localhost/bb:1");
    let mut two = Image::busybox();
    two.config["Cmd"] = json!(["echo", "two"]);
    put_image(&env.store(), &two, "localhost/bb:2");
    let array = |out: &std::process::Output| -> Vec<Value> {
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_else(|| panic!("a JSON array: {out:?}"))
    };

    // Negative control first: every name found, exit 0 and nothing on stderr.
    let out = env.run(&["inspect", "localhost/bb:1", "localhost/bb:2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let all = array(&out);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["RepoTags"], json!(["localhost/bb:1"]));
    assert_eq!(all[1]["RepoTags"], json!(["localhost/bb:2"]));
    assert_eq!(all[1]["Config"]["Cmd"], json!(["echo", "two"]));
    let out = env.run(&[
        "inspect",
        "--format",
        "{{index .RepoTags 0}} {{.Config.Cmd}}",
        "localhost/bb:1",
        "localhost/bb:2",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "localhost/bb:1 [sh]\nlocalhost/bb:2 [echo two]\n"
    );

    // A missing name in the middle: the others printed, its error, exit 1.
    let out = env.run(&[
        "inspect",
        "localhost/bb:1",
        "localhost/none:1",
        "localhost/bb:2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let found = array(&out);
    assert_eq!(found.len(), 2);
    assert_eq!(found[1]["RepoTags"], json!(["localhost/bb:2"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("imgtool: inspect localhost/none:1: no image tagged"),
        "{err}"
    );
    let out = env.run(&[
        "inspect",
        "-f",
        "{{.Config.Cmd}}",
        "localhost/none:1",
        "localhost/bb:2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[echo two]\n");
    // None found: `[]`, an error line for each, exit 1.
    let out = env.run(&["inspect", "localhost/none:1", "localhost/none:2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("localhost/none:1") && lines[1].contains("localhost/none:2"));
    // No name at all is a usage error.
    assert_eq!(env.run(&["inspect"]).status.code(), Some(2));
}

/// `imgtool inspect x | head -1` when head is gone before imgtool writes: the process
/// ends by SIGPIPE as `cat` would, with no panic message.
#[test]
fn a_closed_stdout_ends_quietly() {
    let env = StoreEnv::new();
    env.run(&["images"]);
    put_image(&env.store(), &Image::busybox(), "localhost/bb:1");
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let out = env
        .cmd()
        .args(["inspect", "localhost/bb:1"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && stderr.is_empty(),
        "{stderr}"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    // Negative control: read, the same command prints its JSON and exits 0.
    let out = env.run(&["inspect", "localhost/bb:1"]);
    assert!(out.status.success());
    inspected(out.stdout);
}
