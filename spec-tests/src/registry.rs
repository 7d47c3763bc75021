//! A real registry for the image tests: Debian's `docker-registry` (CNCF distribution)
//! on 127.0.0.1 at a free port, storage in a temp dir, optionally behind htpasswd basic
//! auth. Stopped and removed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running registry.
pub struct Registry {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
    /// `user:password` when started with auth.
    pub credentials: Option<(String, String)>,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl Registry {
    /// Starts an anonymous registry.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Starts a registry requiring basic auth for `user`:`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_inner(Some((user.to_string(), password.to_string())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spec-registry-")
            .tempdir()
            .expect("registry tempdir");
        let mut reg = Self {
            dir,
            child: None,
            port: 0,
            credentials,
        };
        // A port chosen by the kernel may be taken by someone else before the registry
        // binds it; try a few.
        for _ in 0..5 {
            reg.port = free_port();
            reg.write_config();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(reg.dir.path().join("config.yml"))
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(reg.dir.path().join("registry.log"))
                        .expect("registry log"),
                )
                .spawn()
                .expect("start docker-registry (hack/install-deps.sh installs it)");
            reg.child = Some(child);
            if reg.wait_ready(Duration::from_secs(10)) {
                return reg;
            }
            reg.stop();
        }
        panic!("docker-registry did not start: {}", reg.log());
    }

    fn write_config(&self) {
        let storage = self.dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("registry storage");
        let mut auth = String::new();
        if let Some((user, password)) = &self.credentials {
            let htpasswd = self.dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: spec-tests\n    path: {}\n",
                htpasswd.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n{auth}",
            storage.display(),
            self.port
        );
        std::fs::write(self.dir.path().join("config.yml"), config).expect("registry config");
    }

    /// True once `GET /v2/` answers (200, or 401 behind auth).
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false; // exited: port taken or bad config
            }
            if let Some(code) = http_status(self.port, "/v2/") {
                if code == 200 || code == 401 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the registry keeps its blobs (tests may corrupt them on purpose).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry (a test may stop it mid-pull); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pushes an image with skopeo, e.g. from `oci:/path:tag` to `repo:tag` here.
    pub fn push_with_skopeo(&self, source: &str, repo_tag: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
        if let Some((u, p)) = &self.credentials {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        cmd.arg(source)
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {source} -> {repo_tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The HTTP status of a plain GET on 127.0.0.1:`port`, or None if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
