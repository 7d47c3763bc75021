//! `ro` on the /dev mount (runc's mounts.bats "ro /dev mount"): /dev is read-only inside the
//! container once it is set up (its device nodes, symlinks and console made first), and
//! the devices in it still work.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

const CHECK: &str = "grep ' /dev ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; \
    touch /dev/new 2>/dev/null && echo created || echo refused; \
    echo x > /dev/null && [ -c /dev/zero ] && echo devices-work";

/// Runs CHECK with the /dev mount's options extended by `extra`.
fn run_with_dev_options(extra: &[&str]) -> String {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    let mounts = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m["destination"] == "/dev" {
                let opts = m["options"].as_array_mut().unwrap();
                opts.extend(extra.iter().map(|o| json!(o)));
            }
            m
        })
        .collect::<Vec<_>>();
    b.set("/mounts", json!(mounts)).sh(CHECK);
    let c = rt.guard("devro");
    rt.run(b.path(), c.id()).ok().stdout
}

#[test]
fn ro_on_the_dev_mount_makes_dev_read_only() {
    assert_eq!(run_with_dev_options(&["ro"]), "ro\nrefused\ndevices-work\n");
}

#[test]
fn negative_control_without_ro_dev_is_writable() {
    // The checks above see a writable /dev.
    assert_eq!(run_with_dev_options(&[]), "rw\ncreated\ndevices-work\n");
}
