//! Property test (fuzzing) of config loading: whatever a hostile config.json holds, the
//! runtime's loading and validation (`commands::create::load_bundle_spec`: parse, field
//! checks, rootfs and /proc-mount checks, making the cwd) returns Ok or an error, and never
//! panics. Inputs are a valid config (runc spec's defaults) with random mutations at random
//! places (values replaced by arbitrary JSON, absurd numbers, hostile paths, keys removed,
//! array items duplicated), plus raw truncated and byte-flipped text.
//!
//! `cargo test -p runtime config_fuzz` runs the default number of cases (256 per property);
//! `hack/fuzz-config.sh` runs many more (PROPTEST_CASES).

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::commands::create::load_bundle_spec;
use crate::container::config_check;

/// The valid starting point: `runtime spec`'s config with a rootfs that exists.
fn base_config() -> Value {
    let spec = libcontainer::oci_spec::runtime::Spec::default();
    let mut v = serde_json::to_value(spec).expect("the default spec serializes");
    v["root"]["path"] = json!("rootfs");
    v["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 5}]});
    v["mounts"].as_array_mut().expect("default mounts").push(
        json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"]}),
    );
    v
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Names of real spec fields (so objects made up hit real code), and random ones.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "path",
            "args",
            "cwd",
            "env",
            "type",
            "source",
            "destination",
            "options",
            "uid",
            "gid",
            "size",
            "hostID",
            "containerID",
            "limit",
            "soft",
            "hard",
            "timeout",
            "namespaces",
            "mounts",
            "process",
            "root",
            "linux",
            "hooks",
            "rlimits",
            "capabilities",
            "resources",
            "memory",
            "cpu",
            "pids",
            "devices",
            "seccomp",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z]{1,8}",
    ]
}

/// Paths and strings an attacker would try.
fn hostile_string() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "/",
        ".",
        "..",
        "../../../../etc",
        "/proc",
        "/proc/self/fd/3",
        "/proc/../proc",
        "/sys",
        "relative/dir",
        "/dev/null",
        "/\u{0}",
        "a\u{0}b",
        "//",
        "/tmp/../../..",
        "RLIMIT_NOFILE",
        "RLIMIT_BOGUS",
        "CAP_SYS_ADMIN",
        "CAP_NOPE",
        "bind",
        "proc",
        "sysfs",
        "tmpfs",
        "pid",
        "network",
        "user",
        "cgroup",
        "mount",
        "time",
        "1.0.2",
        "0.1",
        "2.0.0",
        "-1",
        "18446744073709551615",
    ])
    .prop_map(str::to_string)
}

/// One change to the config.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    Duplicate,
    AbsurdNumber(i128),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any_json().prop_map(Mutation::Replace),
        hostile_string().prop_map(|s| Mutation::Replace(Value::from(s))),
        Just(Mutation::Remove),
        Just(Mutation::Duplicate),
        prop::sample::select(vec![
            i128::from(i64::MIN),
            -1001,
            -2,
            -1,
            0,
            65,
            1001,
            i128::from(u32::MAX),
            i128::from(i64::MAX),
            i128::from(u64::MAX),
        ])
        .prop_map(Mutation::AbsurdNumber),
    ]
}

/// Every JSON pointer in `v`, parents before children.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                pointers(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(config: &mut Value, at: prop::sample::Index, m: &Mutation) {
    let mut all = Vec::new();
    pointers(config, String::new(), &mut all);
    let ptr = all[at.index(all.len())].clone();
    if ptr.is_empty() {
        if let Mutation::Replace(v) = m {
            *config = v.clone();
        }
        return;
    }
    let (parent_ptr, key) = ptr.rsplit_once('/').expect("a pointer with a parent");
    let key = key.replace("~1", "/").replace("~0", "~");
    let Some(parent) = config.pointer_mut(parent_ptr) else {
        return;
    };
    match (parent, m) {
        (Value::Object(obj), Mutation::Remove) => {
            obj.remove(&key);
        }
        (Value::Array(arr), Mutation::Remove) => {
            if let Ok(i) = key.parse::<usize>() {
                if i < arr.len() {
                    arr.remove(i);
                }
            }
        }
        (Value::Array(arr), Mutation::Duplicate) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| arr.get(i)).cloned() {
                arr.push(item);
            }
        }
        (parent, Mutation::Replace(v)) => set(parent, &key, v.clone()),
        (parent, Mutation::AbsurdNumber(n)) => {
            let v = i64::try_from(*n)
                .map(Value::from)
                .or_else(|_| u64::try_from(*n).map(Value::from))
                .unwrap_or(Value::Null);
            set(parent, &key, v)
        }
        _ => {}
    }
}

fn set(parent: &mut Value, key: &str, v: Value) {
    match parent {
        Value::Object(obj) => {
            obj.insert(key.to_string(), v);
        }
        Value::Array(arr) => {
            if let Some(slot) = key.parse::<usize>().ok().and_then(|i| arr.get_mut(i)) {
                *slot = v;
            }
        }
        _ => {}
    }
}

/// Loading makes a missing cwd inside the rootfs; a root.path outside the bundle ("/",
/// "../..") would let the fuzzer make directories on the host, so it is put back.
fn keep_root_in_bundle(config: &mut Value) {
    if let Some(path) = config.pointer_mut("/root/path") {
        if path
            .as_str()
            .is_some_and(|p| p.starts_with('/') || p.contains(".."))
        {
            *path = json!("rootfs");
        }
    }
}

/// Loads `text` as the config.json of a fresh bundle (removed afterwards); must not panic,
/// whatever the answer.
fn load(text: &[u8]) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("config-fuzz-")
        .tempdir()
        .expect("tempdir");
    std::fs::create_dir_all(dir.path().join("rootfs/proc")).expect("rootfs");
    std::fs::write(dir.path().join("config.json"), text).expect("write config.json");
    load_bundle_spec(dir.path())
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Mutated configs: loading answers, never panics; an error is one line.
    #[test]
    fn config_fuzz_mutated_configs_never_panic(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..6)
    ) {
        let mut config = base_config();
        for (at, m) in &mutations {
            apply(&mut config, *at, m);
        }
        keep_root_in_bundle(&mut config);
        let text = serde_json::to_vec(&config).expect("serialize");
        if let Err(e) = load(&text) {
            prop_assert!(!e.contains('\n'), "a multi-line error: {e}");
        }
    }

    /// Raw text: truncated and byte-flipped valid configs, and arbitrary bytes.
    #[test]
    fn config_fuzz_raw_text_never_panics(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        noise in prop::collection::vec(any::<u8>(), 0..64),
        use_noise in any::<bool>(),
    ) {
        let mut text = if use_noise {
            noise
        } else {
            serde_json::to_vec(&base_config()).expect("serialize")
        };
        if !text.is_empty() {
            for (at, byte) in &flips {
                let i = at.index(text.len());
                text[i] = *byte;
            }
            text.truncate(cut.index(text.len() + 1));
        }
        // Loading only what cannot reach outside the bundle (see keep_root_in_bundle).
        let parsed = config_check::parse(&text).map(|p| p.spec);
        let root_inside = parsed.as_ref().is_ok_and(|s| {
            s.root().as_ref().is_none_or(|r| {
                let p = r.path().to_string_lossy();
                !p.starts_with('/') && !p.contains("..")
            })
        });
        if parsed.is_err() || root_inside {
            let _ = load(&text);
        }
    }
}

#[test]
fn config_fuzz_base_config_is_valid() {
    let text = serde_json::to_vec(&base_config()).unwrap();
    load(&text).expect("the unmutated config loads");
}
