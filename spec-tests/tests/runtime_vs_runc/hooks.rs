//! runtime-spec `hooks`: each kind's working directory and stdin (issue 19.8), order,
//! env, args, failures (issue 13.6), timeouts.

use serde_json::{json, Value};
use spec_tests::matrix::{cli, row, Class, Obs, Row};

const S: &str = "hooks";

const POSTSTART_RUNNING: &str = "runc 1.1.5 runs poststart hooks during create, before the process runs, so they see `created`; the runtime spec runs them after the process starts (runc 1.2 too): ours see `running`";

/// A host hook that records its cwd and the state on stdin in `{dir}/NAME.cwd|.state` and
/// appends NAME to `{dir}/order`, then exits `code`.
fn hook(name: &str, code: i32) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
        "pwd > {{dir}}/{name}.cwd; cat > {{dir}}/{name}.state; echo {name} >> {{dir}}/order; exit {code}")]})
}

/// The scratch directory bind-mounted at the same path, for hooks that run inside.
fn dir_inside() -> Value {
    json!({"destination": "{dir}", "type": "bind", "source": "{dir}", "options": ["rbind", "rw"]})
}

/// A container with one hook of `kind`, run through create/start/kill/delete; the hook's
/// cwd and stdin are observed.
fn kind(kind: &'static str) -> Row {
    row(S, format!("{kind}: cwd and stdin state"))
        .set(&format!("/hooks/{kind}"), json!([hook(kind, 0)]))
        .push("/mounts", dir_inside())
        .args(&["sleep", "100"])
        .daemon()
        .cli(&["kill", "{id}", "KILL"])
        .wait("stopped")
        .cli(&["delete", "{id}"])
        .observe(Obs::File(leak(format!("{kind}.cwd")), Class::Text))
        .observe(Obs::File(leak(format!("{kind}.state")), Class::JsonValues))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub fn rows() -> Vec<Row> {
    vec![
        kind("prestart"),
        kind("createRuntime"),
        kind("createContainer"),
        kind("startContainer"),
        kind("poststart").by_design(POSTSTART_RUNNING),
        kind("poststop"),
        row(S, "all six kinds run")
            .set("/hooks", json!({
                "prestart": [hook("prestart", 0)], "createRuntime": [hook("createRuntime", 0)],
                "createContainer": [hook("createContainer", 0)], "startContainer": [hook("startContainer", 0)],
                "poststart": [hook("poststart", 0)], "poststop": [hook("poststop", 0)]}))
            .push("/mounts", dir_inside())
            .args(&["sleep", "100"])
            .daemon()
            .cli(&["delete", "-f", "{id}"])
            // The set, not the order: Debian's runc 1.1.5 runs poststart concurrently with
            // startContainer, so its order varies (runtime_hooks.rs asserts ours).
            .host("hooks that ran", |c| {
                let mut names: Vec<String> = std::fs::read_to_string(c.dir().join("order"))?.lines().map(str::to_string).collect();
                names.sort();
                Ok(names.join(" "))
            }),
        row(S, "hook env and args")
            .set("/hooks/prestart", json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo \"$0 $1 $HOOKVAR\" > {dir}/env", "arg0", "arg1"], "env": ["HOOKVAR=v"]}]))
            .args(&["true"])
            .run()
            .observe(Obs::File("env", Class::Text)),
        row(S, "hook env: nothing inherited from the runtime")
            .set("/hooks/prestart", json!([{"path": "/bin/sh", "args": ["sh", "-c", "(env | grep -c -E '^(PATH|MATRIX_LEAK)=') > {dir}/env"]}]))
            .args(&["true"])
            .step(cli(&["run", "{id}"]).env("MATRIX_LEAK", "1"))
            .observe(Obs::File("env", Class::Text)),
        row(S, "prestart failing: create fails, the container is gone")
            .set("/hooks/prestart", json!([hook("prestart", 3)]))
            .args(&["sleep", "100"])
            .create()
            .observe(Obs::State),
        row(S, "createRuntime failing: create fails")
            .set("/hooks/createRuntime", json!([hook("createRuntime", 3)]))
            .args(&["sleep", "100"])
            .create()
            .observe(Obs::State),
        row(S, "startContainer failing: start fails")
            .set("/hooks/startContainer", json!([hook("startContainer", 3)]))
            .push("/mounts", dir_inside())
            .args(&["sleep", "100"])
            .create()
            .start()
            .wait("stopped")
            .observe(Obs::State),
        row(S, "poststart failing: a warning, the rest still run (13.6)")
            .set("/hooks/poststart", json!([hook("first", 3), hook("second", 0)]))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::File("order", Class::Text))
            .by_design("issue 13.6: a failing poststart hook is a warning and the rest still run, as the runtime spec says; runc 1.1.5 fails the container"),
        row(S, "poststop failing: delete succeeds, the rest still run (13.6)")
            .set("/hooks/poststop", json!([hook("first", 3), hook("second", 0)]))
            .args(&["sleep", "100"])
            .daemon()
            .cli(&["kill", "{id}", "KILL"])
            .wait("stopped")
            .cli(&["delete", "{id}"])
            .observe(Obs::State)
            .cli(&["delete", "{id}"])
            .observe(Obs::File("order", Class::Text))
            .observe(Obs::Leftovers)
            .by_design("issue 13.6: a failing poststop hook is a warning and delete succeeds, as the runtime spec says; runc 1.1.5 fails the delete"),
        row(S, "a hook that is not there")
            .set("/hooks/prestart", json!([{"path": "/no/such/hook"}]))
            .args(&["true"])
            .run(),
        row(S, "a hook past its timeout")
            .set("/hooks/prestart", json!([{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]))
            .args(&["true"])
            .run(),
        row(S, "a hook with timeout 0 is refused")
            .set("/hooks/prestart", json!([{"path": "/bin/true", "timeout": 0}]))
            .args(&["true"])
            .run(),
        row(S, "hooks of a container deleted quickly leave nothing (13.10)")
            .set("/hooks", json!({"prestart": [hook("prestart", 0)], "poststop": [hook("poststop", 0)]}))
            .args(&["sleep", "100"])
            .daemon()
            .cli(&["delete", "-f", "{id}"])
            .observe(Obs::Leftovers),
    ]
}
