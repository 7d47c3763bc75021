//! runc's lifecycle commands: create, start, state, kill, delete, run — their flags and
//! error cases (missing id, unknown id, duplicate id, bad signal), and the wording clients
//! match (issue 13.1, 13.8, 19.13).

use spec_tests::matrix::{cli, row, Class, Obs, Row, Stdout};

const S: &str = "CLI: create, start, state, kill, delete, run";

/// A created (not started) container that sleeps.
fn created(name: &str) -> Row {
    row(S, name).args(&["sleep", "100"]).create()
}

/// A running container that sleeps.
fn running(name: &str) -> Row {
    row(S, name).args(&["sleep", "100"]).daemon()
}

/// A running container whose init reports `signal` (a name or number sh's trap takes) on
/// its stdout (the create step's) and exits.
fn trapping(name: &str, signal: &str) -> Row {
    row(S, name)
        .sh(&format!("trap 'echo got {signal}; exit 0' {signal}; echo ready; while :; do sleep 1 & wait $!; done"))
        .daemon()
}

/// A command line runc refuses before doing anything: status 1, `Incorrect Usage` and the
/// command's help on stdout, one error record on stderr (the help texts differ, not
/// compared).
fn usage_error(name: &str, args: &[&str]) -> Row {
    row(S, name).step(cli(args).out(Class::Phrase("Incorrect Usage")))
}

/// A container whose program has exited.
fn stopped(name: &str) -> Row {
    row(S, name)
        .args(&["true"])
        .create()
        .start()
        .wait("stopped")
}

pub fn rows() -> Vec<Row> {
    vec![
        // create
        usage_error("create: no id", &["create"]),
        created("create: then state is created").observe(Obs::State),
        created("create: the same id again").cli_err(&["create", "{id}"], "container with given ID already exists"),
        row(S, "create: an id with a slash").args(&["true"]).cli(&["create", "a/b"]),
        row(S, "create: an id with ..").args(&["true"]).cli(&["create", ".."]),
        row(S, "create: --bundle that does not exist").cli(&["create", "--bundle", "/no/such/bundle", "{id}"]),
        row(S, "create: --bundle relative (.)").args(&["true"]).cli(&["create", "--bundle", ".", "{id}"]).observe(Obs::State),
        row(S, "create: --pid-file").args(&["sleep", "100"]).cli(&["create", "--pid-file", "{dir}/pid", "{id}"]).observe(Obs::File("pid", Class::Text)),
        row(S, "create: --pid-file relative to the cwd").args(&["sleep", "100"]).cli(&["create", "--pid-file", "pid.rel", "{id}"])
            .host("pid file in the bundle", |c| Ok(std::fs::read_to_string(c.bundle.path().join("pid.rel")).map(|s| format!("{} bytes, newline: {}", !s.is_empty(), s.ends_with('\n'))).unwrap_or_else(|e| e.to_string()))),
        row(S, "create: --pid-file in a missing directory").args(&["sleep", "100"]).cli(&["create", "--pid-file", "/no/such/dir/pid", "{id}"]).observe(Obs::State),
        row(S, "create: --console-socket that does not exist").set("/process/terminal", serde_json::json!(true)).args(&["true"]).cli(&["create", "--console-socket", "/no/such.sock", "{id}"]),
        row(S, "create: --no-pivot").args(&["sleep", "100"]).cli(&["create", "--no-pivot", "{id}"]).start().wait("running").observe(Obs::Mounts("/$")),
        row(S, "create: --no-new-keyring").args(&["cat", "/proc/self/stat"]).step(cli(&["run", "--no-new-keyring", "{id}"]).out(Class::Ignore)),
        row(S, "create: --preserve-fds 0").args(&["echo", "ok"]).cli(&["run", "--preserve-fds", "0", "{id}"]),
        // start
        created("start: a created container runs").start().wait("running").observe(Obs::State),
        running("start: a running container again").cli(&["start", "{id}"]),
        stopped("start: a stopped container").cli(&["start", "{id}"]),
        row(S, "start: an unknown id").cli_err(&["start", "no-such-ctr"], "container does not exist"),
        usage_error("start: no id", &["start"]),
        // state
        row(S, "state: unknown id").cli_err(&["state", "no-such-ctr"], "container does not exist"),
        usage_error("state: no id", &["state"]),
        running("state: running").observe(Obs::State),
        stopped("state: stopped").observe(Obs::State),
        running("state: paused").cli(&["pause", "{id}"]).observe(Obs::State),
        running("state | head -0 (broken pipe) (13.9)").step(cli(&["state", "{id}"]).stdout(Stdout::BrokenPipe)),
        // kill
        trapping("kill: default signal is TERM", "TERM").cli(&["kill", "{id}"]).wait("stopped").observe(Obs::StepOutput(0, Class::Text)),
        running("kill: KILL by name").cli(&["kill", "{id}", "KILL"]).wait("stopped"),
        running("kill: SIGKILL").cli(&["kill", "{id}", "SIGKILL"]).wait("stopped"),
        running("kill: 9").cli(&["kill", "{id}", "9"]).wait("stopped"),
        running("kill: an unknown signal name").cli_err(&["kill", "{id}", "NOSUCHSIG"], "unknown signal"),
        running("kill: signal 0 while running (13.8, 19.13)").cli(&["kill", "{id}", "0"]).observe(Obs::State),
        running("kill: --all").cli(&["kill", "--all", "{id}", "KILL"]).wait("stopped"),
        trapping("kill: USR1 by name", "USR1").cli(&["kill", "{id}", "USR1"]).wait("stopped").observe(Obs::StepOutput(0, Class::Text)),
        trapping("kill: SIGHUP", "HUP").cli(&["kill", "{id}", "SIGHUP"]).wait("stopped").observe(Obs::StepOutput(0, Class::Text)),
        trapping("kill: RTMIN+1", "34").cli(&["kill", "{id}", "RTMIN+1"]).wait("stopped").observe(Obs::StepOutput(0, Class::Text))
            .by_design("we take the RTMIN+N spelling (as kill(1) and later runc do); runc 1.1.5 refuses it (numbers work in both)"),
        created("kill: a created container").cli(&["kill", "{id}", "KILL"]).wait("stopped"),
        stopped("kill: a stopped container says not running (13.1)").cli_err(&["kill", "{id}", "KILL"], "container not running"),
        row(S, "kill: an unknown id").cli_err(&["kill", "no-such-ctr", "KILL"], "container does not exist"),
        usage_error("kill: no id", &["kill"]),
        // delete
        stopped("delete: a stopped container").cli(&["delete", "{id}"]).observe(Obs::State).observe(Obs::Leftovers),
        running("delete: a running one without --force").cli_err(&["delete", "{id}"], "cannot delete container").observe(Obs::State),
        running("delete: --force a running one").cli(&["delete", "--force", "{id}"]).observe(Obs::State).observe(Obs::Leftovers),
        created("delete: a created one").cli(&["delete", "{id}"]).observe(Obs::State),
        running("delete: a paused one with --force").cli(&["pause", "{id}"]).cli(&["delete", "-f", "{id}"]).observe(Obs::State).observe(Obs::Leftovers),
        row(S, "delete: an unknown id").cli_err(&["delete", "no-such-ctr"], "container does not exist"),
        row(S, "delete: --force an unknown id").cli(&["delete", "--force", "no-such-ctr"]),
        usage_error("delete: no id", &["delete"]),
        // run
        row(S, "run: --detach, then state").args(&["sleep", "100"]).cli(&["run", "-d", "{id}"]).wait("running"),
        row(S, "run: --detach of a program that exits").args(&["true"]).cli(&["run", "-d", "{id}"]).wait("stopped"),
        row(S, "run: removes the container afterwards").args(&["true"]).run().observe(Obs::State),
        row(S, "run: --keep keeps it stopped").args(&["true"]).cli(&["run", "--keep", "{id}"]).observe(Obs::State),
        row(S, "run: --pid-file with -d").args(&["sleep", "100"]).cli(&["run", "-d", "--pid-file", "{dir}/pid", "{id}"]).observe(Obs::File("pid", Class::Masked)),
        row(S, "run: --no-subreaper").args(&["echo", "ok"]).cli(&["run", "--no-subreaper", "{id}"]),
        row(S, "run: an id already running").args(&["sleep", "100"]).cli(&["run", "-d", "{id}"]).cli_err(&["run", "{id}"], "container with given ID already exists"),
        row(S, "run: the default bundle is the cwd").args(&["echo", "from-cwd"]).cli(&["run", "{id}"]),
        row(S, "run: Go-style single-dash flags").args(&["echo", "go"]).cli(&["run", "-bundle", "{bundle}", "{id}"]),
        row(S, "run: --flag=value").args(&["echo", "eq"]).cli(&["run", "--bundle={bundle}", "{id}"]),
        usage_error("run: an unknown flag", &["run", "--no-such-flag", "{id}"]),
    ]
}
