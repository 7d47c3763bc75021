//! runtime-spec `root`, `hostname`, `domainname`, `annotations`, `ociVersion`, and
//! config.json itself.

use serde_json::json;
use spec_tests::matrix::{row, Obs, Row};

const S: &str = "root, hostname, annotations, config.json";

pub fn rows() -> Vec<Row> {
    vec![
        row(S, "root.readonly: true refuses writes")
            .sh("touch /x; echo rc=$?")
            .step(spec_tests::matrix::cli(&["run", "{id}"]).err(spec_tests::matrix::Class::Text)),
        row(S, "root.readonly: false allows writes")
            .set("/root/readonly", json!(false))
            .sh("touch /x && echo wrote")
            .run(),
        row(S, "root.path: absolute")
            .set("/root/path", json!("{bundle}/rootfs"))
            .args(&["echo", "ok"])
            .run(),
        row(S, "root.path: missing directory")
            .set("/root/path", json!("no-such-rootfs"))
            .run(),
        row(S, "root.path: a file")
            .set("/root/path", json!("config.json"))
            .run(),
        row(S, "root: mount table entry of /")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/$")),
        row(S, "hostname: set").set("/hostname", json!("matrix-host")).args(&["hostname"]).run(),
        row(S, "hostname: absent keeps the new UTS namespace's (host's copy)")
            .remove("/hostname")
            .sh("test \"$(hostname)\" = \"$(cat /proc/sys/kernel/hostname)\" && echo same")
            .run(),
        // The host's own name, so a runtime that wrongly accepts changes nothing.
        row(S, "hostname: without a UTS namespace is refused")
            .set("/hostname", json!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim()))
            .set("/linux/namespaces", json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "mount"}]))
            .args(&["true"])
            .run_err("unable to set hostname without a private UTS namespace"),
        row(S, "domainname: set")
            .set("/domainname", json!("example.org"))
            .args(&["cat", "/proc/sys/kernel/domainname"])
            .run()
            .by_design("runc 1.1.5 ignores `domainname` (runc 1.2 sets it); the runtime spec says set it"),
        row(S, "annotations: reported by state")
            .set("/annotations", json!({"org.example.b": "2", "org.example.a": "1"}))
            .args(&["sleep", "100"])
            .create()
            .observe(Obs::State),
        row(S, "state JSON: ociVersion is the spec version each runtime implements")
            .args(&["sleep", "100"])
            .create()
            .observe(Obs::StateRaw)
            .host("ociVersion only", |c| {
                let st = c.state().ok_or_else(|| anyhow::anyhow!("no state"))?;
                Ok(format!("{:?}", st.get(&["ociVersion"])))
            })
            .by_design("state's ociVersion is the runtime-spec version the runtime implements: runc 1.1.5 says 1.0.2-dev, ours 1.1.0 (compared nowhere else)"),
        row(S, "state JSON: owner")
            .args(&["sleep", "100"])
            .create()
            .host("owner", |c| {
                let st = c.state().ok_or_else(|| anyhow::anyhow!("no state"))?;
                Ok(format!("{:?}", st.get(&["owner"])))
            }),
        row(S, "ociVersion: 1.2.0 accepted")
            .set("/ociVersion", json!("1.2.0"))
            .args(&["echo", "ok"])
            .run(),
        row(S, "ociVersion: 0.5.0")
            .set("/ociVersion", json!("0.5.0"))
            .args(&["echo", "ok"])
            .run()
            .by_design("a config must declare a 1.x runtime-spec version (docs/runtime.md, bad input); runc 1.1.5 does not check"),
        row(S, "config.json: unknown fields are ignored")
            .set("/x-unknown", json!({"a": 1}))
            .set("/process/x-unknown", json!(1))
            .args(&["echo", "ok"])
            .run(),
        row(S, "config.json: not JSON")
            .with(|s| {
                std::fs::write(s.bundle.path().join("config.json"), "{not json")?;
                Ok(())
            })
            .run(),
        row(S, "config.json: missing")
            .with(|s| {
                std::fs::remove_file(s.bundle.path().join("config.json"))?;
                Ok(())
            })
            .run(),
        row(S, "config.json: no process")
            .remove("/process")
            .run(),
        row(S, "config.json: a field of the wrong type")
            .set("/process/user/uid", json!("zero"))
            .run(),
    ]
}
