//! The harness's rules, checked on the test sources themselves so that a new test cannot
//! quietly break them:
//!
//! - a test that does not run says so only through `spec_tests::not_run` (which counts it
//!   for hack/test.sh's summary and fails under CI when a tool is missing), never with a
//!   message of its own followed by a silent `return`;
//! - a test that uses the debug-only `_RUNTIME_TEST_UNSAFE` switches asks
//!   `not_run::negative_control_has_test_switches` first, so a release build records the
//!   negative control as not run instead of passing it.

use std::path::{Path, PathBuf};

fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 20,
        "the test sources were not found: {files:?}"
    );
    files
}

/// The string literals of one line of code (comments dropped; escapes kept as written).
fn literals(line: &str) -> Vec<String> {
    let code = match line.find("//") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    };
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut escaped = false;
    for ch in code.chars() {
        match (&mut cur, ch) {
            (Some(s), _) if escaped => {
                s.push(ch);
                escaped = false;
            }
            (Some(_), '\\') => escaped = true,
            (Some(_), '"') => out.push(cur.take().unwrap_or_default()),
            (Some(s), _) => s.push(ch),
            (None, '"') => cur = Some(String::new()),
            (None, _) => {}
        }
    }
    out
}

/// The words that mark a test reporting a skip by itself.
fn says_skipped(text: &str) -> bool {
    let t = text.to_lowercase();
    let words: Vec<&str> = t
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().any(|w| w.starts_with("skip"))
        || words.windows(2).any(|w| w[0] == "not" && w[1] == "run")
}

/// Messages printed with `eprintln!` / `println!` (possibly over several lines) that say a
/// test was skipped or not run, outside `not_run.rs`.
fn own_skip_messages(files: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy();
        if name == "not_run.rs" || name == "harness_conventions.rs" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if !(line.contains("eprintln!(") || line.contains("println!(")) {
                continue;
            }
            // The macro's text: this line and the following ones up to its `);`.
            let end = (n..lines.len())
                .find(|&i| lines[i].trim_end().ends_with(");"))
                .unwrap_or(n);
            let says = lines[n..=end]
                .iter()
                .any(|l| literals(l).iter().any(|lit| says_skipped(lit)));
            if says {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn tests_report_not_running_only_through_not_run() {
    let found = own_skip_messages(&sources());
    assert!(
        found.is_empty(),
        "tests that report a skip themselves (use spec_tests::not_run): {found:#?}"
    );
}

#[test]
fn negative_controls_with_test_switches_ask_whether_the_runtime_has_them() {
    let mut found = Vec::new();
    for f in sources() {
        let text = std::fs::read_to_string(&f).unwrap();
        let uses = |switch: &str| {
            text.lines()
                .any(|l| literals(l).iter().any(|s| s == switch))
        };
        // Each switch with the question about the binary that has it.
        let unasked = [
            (
                "_RUNTIME_TEST_UNSAFE",
                [
                    "not_run::negative_control_has_test_switches",
                    "runtime_has_test_switches",
                ],
            ),
            (
                "_IMGTOOL_TEST_UNSAFE",
                [
                    "imgtool_negative_control_has_test_switches",
                    "imgtool_has_test_switches",
                ],
            ),
        ]
        .into_iter()
        .any(|(switch, asks)| uses(switch) && !asks.iter().any(|a| text.contains(a)));
        if unasked {
            found.push(f.display().to_string());
        }
    }
    assert!(
        found.is_empty(),
        "files using _RUNTIME_TEST_UNSAFE or _IMGTOOL_TEST_UNSAFE without not_run::(imgtool_)negative_control_has_test_switches: {found:?}"
    );
}

/// Negative control of the first check: the scanner sees a skip message written the way
/// the old tests wrote them, in a file of its own.
#[test]
fn negative_control_the_scanner_sees_a_skip_message() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("client_x.rs");
    std::fs::write(
        &f,
        "fn t() {\n    // a comment saying skip is fine\n    eprintln!(\"SKIP: containerd is not installed\");\n    return;\n}\n\
         fn u() {\n    assert!(x, \"the trap did not run\");\n    eprintln!(\n        \"NOT RUN: {}\",\n        why\n    );\n}\n",
    )
    .unwrap();
    let found = own_skip_messages(&[f]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains(":3:"), "{found:?}");
    assert!(found[1].contains(":8:"), "{found:?}");
}
