//! Mounts: bind (read-write and read-only), tmpfs with options, propagation, a read-only
//! root, masked and read-only paths, devices.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

fn run_ok(b: &Bundle, name: &str) -> String {
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from-host\n").unwrap();
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "rw"]}),
    )
    .push(
        "/mounts",
        json!({"destination": "/ro", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}),
    )
    .sh("cat /data/in; echo written > /data/out; echo x > /ro/y 2>/dev/null || echo ro-denied");
    assert_eq!(run_ok(&b, "bind"), "from-host\nro-denied\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "written\n"
    );
    assert!(!host.path().join("y").exists());
}

#[test]
fn tmpfs_mount_with_options() {
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "size=1m", "mode=1777"]}),
    )
    .sh("grep ' /scratch ' /proc/self/mounts; stat -c %a /scratch");
    let out = run_ok(&b, "tmpfs");
    let line = out.lines().next().unwrap();
    assert!(line.starts_with("tmpfs /scratch tmpfs"), "{out}");
    assert!(
        line.contains("nosuid") && line.contains("nodev") && line.contains("size=1024k"),
        "{out}"
    );
    assert_eq!(out.lines().nth(1), Some("1777"));
}

#[test]
fn readonly_root_and_writable_root() {
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(true))
        .sh("touch /x 2>/dev/null && echo wrote || echo ro");
    assert_eq!(run_ok(&b, "roroot"), "ro\n");
    b.set("/root/readonly", json!(false));
    assert_eq!(run_ok(&b, "rwroot"), "wrote\n");
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = Bundle::busybox();
    // A masked file reads empty (/dev/null over it), a masked directory is an empty tmpfs.
    b.set("/linux/maskedPaths", json!(["/proc/timer_list", "/proc/bus"]))
        .set("/linux/readonlyPaths", json!(["/proc/sys"]))
        .sh("wc -c < /proc/timer_list; ls /proc/bus | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo rw || echo ro");
    let out = run_ok(&b, "mask");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["0", "0", "ro"], "{out}");
}

#[test]
fn relative_masked_and_readonly_paths_apply() {
    // runc takes relative entries from the container's root.
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false))
        .sh("wc -c < /proc/cpuinfo; touch /etc/st-written 2>/dev/null && echo rw || echo ro");
    // The negative control: without the entries /proc/cpuinfo has content and /etc is
    // writable.
    let out = run_ok(&b, "relnone");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_ne!(lines[0], "0", "{out}");
    assert_eq!(lines[1], "rw", "{out}");
    b.set("/linux/maskedPaths", json!(["proc/cpuinfo"]))
        .set("/linux/readonlyPaths", json!(["etc"]));
    let out = run_ok(&b, "relpaths");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["0", "ro"], "{out}");
}

#[test]
fn mount_propagation_rslave_sees_host_mounts() {
    // A host mount made under a bind-mounted directory after the container starts is
    // visible inside with rslave propagation. The host side must be a shared mount for
    // events to propagate, so the test makes it one (and undoes it on drop).
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    let shared = SharedMount::new(host.path());
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": "/shared", "type": "bind", "source": host.path(), "options": ["rbind", "rslave"]}),
    )
    .sh("for i in $(seq 400); do [ -e /shared/sub/marker ] && { echo seen; exit 0; }; sleep 0.05; done; echo unseen");
    let c = rt.guard("prop");
    let mut child = rt
        .command()
        .args(["run", "--bundle", &b.path().to_string_lossy(), c.id()])
        .stdout(std::fs::File::create(b.path().join("out")).unwrap())
        .spawn()
        .unwrap();
    rt.wait_status(c.id(), "running", std::time::Duration::from_secs(10));
    // Make the host side shared so the slave receives events.
    let src = host.path().to_string_lossy().to_string();
    let sub = host.path().join("sub").to_string_lossy().to_string();
    let marker_dir = tempfile::tempdir().unwrap();
    std::fs::write(marker_dir.path().join("marker"), "").unwrap();
    let md = marker_dir.path().to_string_lossy().to_string();
    assert!(std::process::Command::new("mount")
        .args(["--bind", &md, &sub])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let _ = std::process::Command::new("umount").arg(&sub).status();
    let _ = src;
    drop(shared);
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(b.path().join("out")).unwrap(),
        "seen\n"
    );
}

#[test]
fn devices_are_created_with_their_numbers() {
    let mut b = Bundle::busybox();
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/fuse-test", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]),
    )
    .sh("stat -c '%t %T %a' /dev/fuse-test; ls /dev/null /dev/zero /dev/urandom /dev/tty >/dev/null && echo defaults");
    // stat prints major/minor in hex.
    assert_eq!(run_ok(&b, "dev"), "a e5 666\ndefaults\n");
}

/// Makes a directory a shared mount point for the duration of a test.
struct SharedMount(std::path::PathBuf);

impl SharedMount {
    fn new(dir: &std::path::Path) -> Self {
        let d = dir.to_string_lossy().to_string();
        let ok = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap()
                .success()
        };
        assert!(ok(&["--bind", &d, &d]) && ok(&["--make-shared", &d]));
        Self(dir.to_path_buf())
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
