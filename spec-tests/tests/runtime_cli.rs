//! The command line as runc's callers use it: --version, spec, features, list formats,
//! Go-style single-dash long flags, --flag=value, and JSON logging.

use serde_json::Value;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

#[test]
fn version_names_the_runtime_spec() {
    let out = Runtime::new().exec(&["--version"]).ok();
    let mut lines = out.stdout.lines();
    assert!(lines.next().unwrap().contains(" version "), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
        "{out:?}"
    );
}

#[test]
fn spec_writes_a_config_that_runs() {
    let rt = Runtime::new();
    let b = Bundle::busybox();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    rt.exec(&["spec", "--bundle", &b.path().to_string_lossy()])
        .ok();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"][0], "sh");
    assert_eq!(config["root"]["path"], "rootfs");
    // It refuses to overwrite.
    assert_ne!(
        rt.exec(&["spec", "--bundle", &b.path().to_string_lossy()])
            .code,
        0
    );
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(["echo", "from-spec"]);
    std::fs::write(b.path().join("config.json"), config.to_string()).unwrap();
    let c = rt.guard("fromspec");
    assert_eq!(rt.run(b.path(), c.id()).ok().stdout, "from-spec\n");
}

#[test]
fn spec_rootless_maps_the_caller() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    rt.exec(&[
        "spec",
        "--rootless",
        "--bundle",
        &dir.path().to_string_lossy(),
    ])
    .ok();
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user"), "{config}");
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], 0);
    assert_eq!(config["linux"]["uidMappings"][0]["size"], 1);
}

#[test]
fn features_describe_the_build() {
    let out = Runtime::new().exec(&["features"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["ociVersionMin"].as_str().unwrap().starts_with("1."));
    assert!(v["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h} missing");
    }
    assert!(v["linux"]["namespaces"].as_array().unwrap().len() >= 7);
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
}

#[test]
fn list_formats() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let c = rt.guard("listme");
    rt.create(b.path(), c.id()).ok();
    let table = rt.exec(&["list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(c.id()) && l.contains("created")),
        "{table}"
    );
    assert_eq!(
        rt.exec(&["list", "-q"]).ok().stdout,
        format!("{}\n", c.id())
    );
    let json: Value =
        serde_json::from_str(&rt.exec(&["list", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(json[0]["id"], c.id());
    assert_eq!(json[0]["status"], "created");
    let json: Value = serde_json::from_str(&rt.exec(&["list", "-f", "json"]).ok().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn go_style_single_dash_long_flags_and_equals() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["echo", "go-style"]);
    let c = rt.guard("goflags");
    let bundle = format!("-bundle={}", b.path().display());
    let out = rt.exec(&["run", "-no-subreaper", &bundle, c.id()]).ok();
    assert_eq!(out.stdout, "go-style\n");
    let c2 = rt.guard("eqflags");
    let bundle = format!("--bundle={}", b.path().display());
    assert_eq!(
        rt.exec(&["run", &bundle, c2.id()]).ok().stdout,
        "go-style\n"
    );
}

#[test]
fn json_log_records_the_error() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = rt
        .command()
        .args([
            "--log",
            &log.to_string_lossy(),
            "--log-format",
            "json",
            "state",
            "st-missing",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("st-missing"),
        "{last}"
    );
    assert!(last["time"].as_str().unwrap().contains('T'), "{last}");
}
