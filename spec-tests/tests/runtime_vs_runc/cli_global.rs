//! runc's global flags (--root, --log, --log-format, --debug, --systemd-cgroup) and the
//! commands without a container: spec (issue 19.16), features, help and version (19.17),
//! logging shapes (19.14).

use serde_json::json;
use spec_tests::matrix::{cli, row, Class, Obs, Row};

const S: &str = "CLI: global flags, spec, features, help";

/// Reads a field of the config.json `spec` wrote into the scratch directory.
fn spec_field(
    pointer: &'static str,
) -> impl Fn(&mut spec_tests::matrix::run::Ctx) -> anyhow::Result<String> {
    move |c| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.dir().join("spec/config.json"))?)?;
        Ok(serde_json::to_string(
            &v.pointer(pointer).cloned().unwrap_or(json!(null)),
        )?)
    }
}

fn spec_dir() -> Row {
    row(S, "").with(|s| {
        std::fs::create_dir(s.dir.join("spec"))?;
        Ok(())
    })
}

/// What `--debug` records is each runtime's own trace: runc's nsexec and libcontainer
/// lines at debug level, ours libcontainer's trace events (info and warning levels among
/// them). Both write only records of the format asked for, and only into `--log`'s file
/// when one is given (the rows of 19.14 that agree); neither dumps the process's spec.
const DEBUG_RECORDS: &str = "with --debug each runtime records its own trace (levels and lines differ); both keep to the format and file asked for, and neither dumps the spec";

pub fn rows() -> Vec<Row> {
    let spec = |name: &str| {
        let mut r = spec_dir();
        r.name = format!("spec: {name}");
        r.cli(&["spec", "--bundle", "{dir}/spec"])
    };
    vec![
        spec("the namespaces (no cgroup namespace, 19.16)").host("namespaces", spec_field("/linux/namespaces")),
        spec("the device rules (deny all, 19.16)").host("devices", spec_field("/linux/resources/devices")),
        spec("the mounts").host("mounts", spec_field("/mounts")),
        spec("the process").host("process", spec_field("/process")),
        spec("masked and readonly paths").host("masked", spec_field("/linux/maskedPaths")).host("readonly", spec_field("/linux/readonlyPaths")),
        spec("root and hostname").host("root", spec_field("/root")).host("hostname", spec_field("/hostname"))
            .by_design("spec's default hostname names this runtime (\"runtime\"), where runc's names runc"),
        spec("ociVersion").host("ociVersion", spec_field("/ociVersion"))
            .by_design("spec writes the runtime-spec version the runtime implements: runc 1.1.5 1.0.2-dev, ours 1.1.0"),
        spec("refuses to overwrite").cli_err(&["spec", "--bundle", "{dir}/spec"], "File config.json exists. Remove it first"),
        {
            let mut r = spec_dir();
            r.name = "spec: --rootless".into();
            r.cli(&["spec", "--rootless", "--bundle", "{dir}/spec"])
                .host("namespaces", spec_field("/linux/namespaces"))
                .host("uidMappings", spec_field("/linux/uidMappings"))
                .host("mounts", spec_field("/mounts"))
        },
        row(S, "spec: --bundle that does not exist").cli(&["spec", "--bundle", "/no/such/dir"]),
        row(S, "features: JSON shape").step(cli(&["features"]).out(Class::Json))
            .by_design("features fills the spec's fields runc 1.1.5 predates (cgroup rdma, seccomp knownFlags and supportedFlags, intelRdt; runc 1.2 fills them too) and names our build in its own annotations; no field is null"),
        row(S, "--version").cli(&["--version"]).by_design("our own version string names our build (issue 19.17 keeps it)"),
        row(S, "--help: usage on stdout, exit 0").step(cli(&["--help"]).out(Class::Empty)),
        row(S, "help TOPIC of an unknown topic (19.17)").cli_err(&["help", "no-such-topic"], "No help topic for 'no-such-topic'"),
        row(S, "help create").step(cli(&["help", "create"]).out(Class::Empty)),
        row(S, "create --help").step(cli(&["create", "--help"]).out(Class::Empty)),
        row(S, "an unknown command").cli(&["no-such-command"]),
        row(S, "no command: help on stdout").step(cli(&[]).out(Class::Empty)),
        // --root. The harness passes `--root` itself; these give a second one, which takes over
        // as in runc (the last value of a flag wins).
        row(S, "--root that does not exist yet").cli(&["--root", "{dir}/newroot", "list", "-q"]),
        row(S, "--root relative").cli(&["--root", "relroot", "list", "-q"]),
        row(S, "--root: a container is found under it").args(&["sleep", "100"]).create().cli(&["list", "-q"]),
        // logging
        row(S, "--log-format json --log FILE: JSON records only in the file (19.14)")
            .args(&["sleep", "100"])
            .step(cli(&["--log", "{dir}/log", "--log-format", "json", "--debug", "create", "{id}"]))
            .observe(Obs::File("log", Class::LogLevels))
            .by_design(DEBUG_RECORDS),
        row(S, "--log FILE text: logrus lines only in the file (19.14)")
            .args(&["sleep", "100"])
            .step(cli(&["--log", "{dir}/log", "--debug", "create", "{id}"]))
            .observe(Obs::File("log", Class::LogLevels))
            .by_design(DEBUG_RECORDS),
        row(S, "--log FILE: an error goes to the file and stderr")
            .step(cli(&["--log", "{dir}/log", "--log-format", "json", "state", "no-such-ctr"]).err(Class::Phrase("container does not exist")))
            .observe(Obs::File("log", Class::LogLevels)),
        row(S, "--log FILE: warnings stay out of stderr (19.14)")
            .set("/linux/resources/unified", json!({"pids.max": "10"}))
            .args(&["true"])
            .step(cli(&["--log", "{dir}/log", "run", "{id}"])),
        row(S, "--log-format: an unknown format").cli(&["--log-format", "yaml", "list"]),
        row(S, "--debug on stderr").args(&["true"]).step(cli(&["--debug", "run", "{id}"]).err(Class::Shape)),
        row(S, "exec --debug does not dump the spec (19.14)").args(&["sleep", "100"]).daemon().step(cli(&["--debug", "exec", "{id}", "true"]).err(Class::Masked)).by_design(DEBUG_RECORDS),
        row(S, "--systemd-cgroup without systemd").args(&["true"]).set("/linux/cgroupsPath", json!("system.slice:mx:{id}")).cli(&["--systemd-cgroup", "run", "{id}"]),
        row(S, "--criu PATH is accepted").cli(&["--criu", "/usr/sbin/criu", "list", "-q"]),
        row(S, "--rootless false").cli(&["--rootless", "false", "list", "-q"]),
    ]
}
