//! imgtool bundles of a busybox image for tests that run them: a private store holding
//! `localhost/busybox:1` (Debian's busybox-static, put in offline), bundles made with
//! any options in a temp dir, all unbundled on drop (after the containers: declare the
//! runtime's guards after this).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use crate::bins;
use crate::container::{capture, Outcome};
use crate::images::Image;
use crate::imgtool_store::put_image;

pub const IMAGE: &str = "localhost/busybox:1";

pub struct BusyboxBundles {
    store: TempDir,
    pub work: TempDir,
    made: RefCell<Vec<PathBuf>>,
}

impl Default for BusyboxBundles {
    fn default() -> Self {
        Self::new()
    }
}

impl BusyboxBundles {
    pub fn new() -> Self {
        let store = tempfile::Builder::new()
            .prefix("spec-bbstore-")
            .tempdir()
            .expect("tempdir");
        put_image(store.path(), &Image::busybox(), IMAGE);
        Self {
            store,
            work: tempfile::tempdir().expect("tempdir"),
            made: Default::default(),
        }
    }

    /// `imgtool --store STORE ARGS`.
    pub fn imgtool(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(bins::imgtool());
        cmd.arg("--store").arg(self.store.path()).args(args);
        capture(cmd)
    }

    /// `imgtool bundle busybox WORK/NAME OPTS -- CMD`, which must succeed; returns the dir.
    pub fn bundle(&self, name: &str, opts: &[String], cmd: &[String]) -> PathBuf {
        let dir = self.work.path().join(name);
        self.made.borrow_mut().push(dir.clone());
        let mut args: Vec<&str> = vec!["bundle", IMAGE, dir.to_str().expect("utf-8 path")];
        args.extend(opts.iter().map(String::as_str));
        args.push("--");
        args.extend(cmd.iter().map(String::as_str));
        self.imgtool(&args).ok();
        dir
    }
}

impl Drop for BusyboxBundles {
    fn drop(&mut self) {
        for b in self.made.borrow().iter() {
            let _ = Command::new(bins::imgtool())
                .arg("unbundle")
                .arg(b)
                .output();
            crate::host::unmount_under(b);
        }
    }
}

/// `sh -c SCRIPT` as a command.
pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// `&str` options as the `String`s `bundle` takes.
pub fn opts(o: &[&str]) -> Vec<String> {
    o.iter().map(|s| s.to_string()).collect()
}
