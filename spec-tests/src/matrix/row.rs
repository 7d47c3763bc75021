//! A row of the matrix as data: a name, edits of the busybox bundle's config, a sequence
//! of CLI steps and observations, and what the comparison is expected to show. Rows are
//! built with a short chain of calls, so adding one is a few lines:
//!
//! ```ignore
//! row("process", "umask 027 reaches the program")
//!     .set("/process/user/umask", json!(23))
//!     .sh("umask")
//!     .run()
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::normalise::Class;
use super::run::Ctx;
use crate::bundle::Bundle;

/// An edit that needs code (files in the rootfs, host state, a listener); `cleanup`s it
/// registers run when the row ends, on both sides, even on failure.
pub type SetupFn = Arc<dyn Fn(&mut Setup) -> anyhow::Result<()> + Send + Sync>;

/// A host-side action in the middle of a row; what it returns is an observation.
pub type HostFn = Arc<dyn Fn(&mut Ctx) -> anyhow::Result<String> + Send + Sync>;

/// What a `SetupFn` may touch.
pub struct Setup<'a> {
    pub bundle: &'a mut Bundle,
    /// This side's scratch directory (pid files, logs, hook outputs), `{dir}` in strings.
    pub dir: &'a std::path::Path,
    /// This side's container id, `{id}` in strings.
    pub id: &'a str,
    pub cleanups: &'a mut Vec<Box<dyn FnOnce() + Send>>,
}

/// What the comparison of a row is expected to show.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Both runtimes are observed alike.
    Agree,
    /// They differ on purpose; the reason (also in docs/runtime.md).
    ByDesign(&'static str),
    /// They differ until an open issue item lands (`"13.3"`), or a finding not yet
    /// assigned (`"new: ..."`). Fails the test under `MATRIX_STRICT=1`.
    Awaiting(&'static str),
}

/// What the host must offer for the row's observations to mean anything.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Requires {
    Nothing,
    /// The container's cgroup is a cgroup v2 one with controllers (a unified host).
    CgroupV2,
    /// Per-controller cgroup v1 hierarchies (a legacy or hybrid host).
    CgroupV1,
}

/// A config edit: JSON pointer operations, or code.
#[derive(Clone)]
pub enum Edit {
    Set(String, Value),
    Push(String, Value),
    Remove(String),
    Func(SetupFn),
}

/// The runtime's stdin for a CLI step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stdin {
    /// `</dev/null` (read-only, as a shell opens it).
    DevNull,
}

/// The runtime's stdout for a CLI step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stdout {
    /// A file, read back as the step's output.
    Capture,
    /// `>/dev/null` (write-only, as a shell opens it).
    DevNull,
    /// A pipe whose reader has gone (`| head -0`): writes get EPIPE / SIGPIPE.
    BrokenPipe,
}

/// One invocation of the runtime under test: `RUNTIME --root ROOT ARGS...`, run in the
/// bundle directory, args with `{id}`, `{bundle}`, `{dir}` replaced.
#[derive(Clone)]
pub struct Cli {
    pub args: Vec<String>,
    pub stdin: Stdin,
    pub stdout: Stdout,
    pub out: Class,
    pub err: Class,
    pub timeout: Duration,
    /// Inside a terminal (script(1), 33 rows by 77 columns); stdout is the terminal's.
    pub tty: bool,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Left running in the background; a later `Step::Reap` waits for it.
    pub background: bool,
}

/// An observation of the live container (its init's pid from `state`) or its traces.
#[derive(Clone, Debug)]
pub enum Obs {
    /// Every fd of the init: number, target kind, access mode from fdinfo.
    FdModes,
    /// The device cgroup's rules in effect (v1 devices.list, sorted).
    Devices,
    /// lo's flags, state and addresses in the container's network namespace.
    Lo,
    /// The init's mount table at and below a path (only at it with a trailing `$`): mount
    /// point, fs type, options, propagation, super options, root.
    Mounts(&'static str),
    /// A file of the container's cgroup: controller (`""` for the v2 hierarchy), file.
    CgroupFile(&'static str, &'static str),
    /// The container's cgroup path in a hierarchy (controller, `""` for v2).
    CgroupPath(&'static str),
    /// `state ID`: exit code and the normalised JSON in key order, except the fields in
    /// `observe::STATE_KEPT_OUT`.
    State,
    /// `state ID` with every field.
    StateRaw,
    /// Lines of /proc/PID/status with these keys.
    ProcStatus(&'static [&'static str]),
    /// A file under /proc/PID (`oom_score_adj`, `limits`).
    ProcFile(&'static str),
    /// A file in the side's scratch directory (hook outputs, logs, pid files).
    File(&'static str, Class),
    /// The stdout file of an earlier step, read again (a detached container's output).
    StepOutput(usize, Class),
    /// Which of the init's namespaces are the host's own.
    Namespaces,
    /// After the container is gone: its cgroup directories and state directory.
    Leftovers,
}

/// A step of a row.
#[derive(Clone)]
pub enum Step {
    Cli(Cli),
    /// Polls `state` until the status is this (or the container is gone for `"gone"`).
    Wait(&'static str),
    Observe(Obs),
    /// A host-side action; its label and result are observations.
    Host(&'static str, HostFn),
    /// Waits for the background CLI step with this index; its exit and output observed.
    Reap(usize),
}

/// A scenario run on both runtimes.
#[derive(Clone)]
pub struct Row {
    pub section: &'static str,
    pub name: String,
    pub edits: Vec<Edit>,
    pub steps: Vec<Step>,
    pub expect: Expect,
    pub requires: Requires,
    /// Must not run beside other rows (host-wide effects).
    pub serial: bool,
}

/// Starts a row in a section of the runtime spec (or runc's CLI).
pub fn row(section: &'static str, name: impl Into<String>) -> Row {
    Row {
        section,
        name: name.into(),
        edits: Vec::new(),
        steps: Vec::new(),
        expect: Expect::Agree,
        requires: Requires::Nothing,
        serial: false,
    }
}

/// A CLI step with default classes: stdout as normalised text, stderr by line shape.
pub fn cli(args: &[&str]) -> Cli {
    Cli {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: Stdin::DevNull,
        stdout: Stdout::Capture,
        out: Class::Text,
        err: Class::Shape,
        timeout: Duration::from_secs(30),
        tty: false,
        env: Vec::new(),
        background: false,
    }
}

impl Cli {
    pub fn out(mut self, c: Class) -> Self {
        self.out = c;
        self
    }
    pub fn err(mut self, c: Class) -> Self {
        self.err = c;
        self
    }
    pub fn stdout(mut self, s: Stdout) -> Self {
        self.stdout = s;
        self
    }
    pub fn tty(mut self) -> Self {
        self.tty = true;
        self
    }
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn background(mut self) -> Self {
        self.background = true;
        self
    }
}

impl Row {
    // --- the bundle ---

    /// Sets the value at a JSON pointer of config.json.
    pub fn set(mut self, pointer: &str, v: Value) -> Self {
        self.edits.push(Edit::Set(pointer.into(), v));
        self
    }
    /// Appends to the array at a JSON pointer.
    pub fn push(mut self, pointer: &str, v: Value) -> Self {
        self.edits.push(Edit::Push(pointer.into(), v));
        self
    }
    /// Removes the value at a JSON pointer.
    pub fn remove(mut self, pointer: &str) -> Self {
        self.edits.push(Edit::Remove(pointer.into()));
        self
    }
    /// The container's argv.
    pub fn args(self, args: &[&str]) -> Self {
        self.set("/process/args", serde_json::json!(args))
    }
    /// The container runs `sh -c SCRIPT`.
    pub fn sh(self, script: &str) -> Self {
        self.args(&["sh", "-c", script])
    }
    /// An edit in code; runs after the JSON edits, with real paths (`s.dir`, `s.id`).
    pub fn with(
        mut self,
        f: impl Fn(&mut Setup) -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.edits.push(Edit::Func(Arc::new(f)));
        self
    }

    // --- the steps ---

    pub fn step(mut self, c: Cli) -> Self {
        self.steps.push(Step::Cli(c));
        self
    }
    /// A CLI step with the default classes.
    pub fn cli(self, args: &[&str]) -> Self {
        self.step(cli(args))
    }
    /// A CLI step whose stderr must carry runc's phrase.
    pub fn cli_err(self, args: &[&str], phrase: &'static str) -> Self {
        self.step(cli(args).err(Class::Phrase(phrase)))
    }
    /// `run ID` in the foreground: exit, stdout text, stderr shape.
    pub fn run(self) -> Self {
        self.cli(&["run", "{id}"])
    }
    /// `run ID` whose stderr must carry runc's phrase (a refused config).
    pub fn run_err(self, phrase: &'static str) -> Self {
        self.cli_err(&["run", "{id}"], phrase)
    }
    /// `create ID`.
    pub fn create(self) -> Self {
        self.cli(&["create", "{id}"])
    }
    /// `start ID`.
    pub fn start(self) -> Self {
        self.cli(&["start", "{id}"])
    }
    /// create, start, wait until running.
    pub fn daemon(self) -> Self {
        self.create().start().wait("running")
    }
    /// `exec ID ARGS...` (stdout text).
    pub fn exec(self, args: &[&str]) -> Self {
        let mut a = vec!["exec", "{id}"];
        a.extend_from_slice(args);
        self.cli(&a)
    }
    pub fn wait(mut self, status: &'static str) -> Self {
        self.steps.push(Step::Wait(status));
        self
    }
    pub fn observe(mut self, o: Obs) -> Self {
        self.steps.push(Step::Observe(o));
        self
    }
    pub fn host(
        mut self,
        label: &'static str,
        f: impl Fn(&mut Ctx) -> anyhow::Result<String> + Send + Sync + 'static,
    ) -> Self {
        self.steps.push(Step::Host(label, Arc::new(f)));
        self
    }
    pub fn reap(mut self, step: usize) -> Self {
        self.steps.push(Step::Reap(step));
        self
    }

    // --- the expectation ---

    /// Differs until issue item `item` (e.g. "13.3") lands; `"new: ..."` for findings no
    /// issue names yet.
    pub fn awaiting(mut self, item: &'static str) -> Self {
        self.expect = Expect::Awaiting(item);
        self
    }
    /// Differs on purpose, for this reason (listed in docs/runtime.md).
    pub fn by_design(mut self, reason: &'static str) -> Self {
        self.expect = Expect::ByDesign(reason);
        self
    }
    pub fn requires(mut self, r: Requires) -> Self {
        self.requires = r;
        self
    }
    pub fn serial(mut self) -> Self {
        self.serial = true;
        self
    }
}
