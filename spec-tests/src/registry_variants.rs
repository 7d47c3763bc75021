//! Registries the plain harness in `registry.rs` does not start, for the pull tests:
//! docker-registry serving HTTPS with a self-signed certificate, and docker-registry
//! behind bearer-token auth with a small token server on 127.0.0.1 (the flow Docker Hub
//! and most registries use: 401 with a Bearer challenge, a token from the realm for the
//! user's basic credentials, then the token on every request; or, for an identity token,
//! the token for `POST grant_type=refresh_token`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use tempfile::TempDir;

use crate::registry::{free_port, http_status};

/// A self-signed certificate and key for 127.0.0.1 made with openssl.
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certificate {
    pub fn generate(dir: &Path, name: &str) -> Self {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { cert, key }
    }
}

/// A docker-registry started with extra configuration; stopped on drop.
pub struct VariantRegistry {
    dir: TempDir,
    child: Option<Child>,
    port: u16,
}

impl VariantRegistry {
    /// Serves HTTPS with a self-signed certificate.
    pub fn with_tls() -> Self {
        Self::start(|dir| {
            let c = Certificate::generate(dir, "registry");
            (
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    c.cert.display(),
                    c.key.display()
                ),
                String::new(),
            )
        })
    }

    /// Requires bearer tokens from `tokens` (plain HTTP).
    pub fn with_token_auth(tokens: &TokenServer) -> Self {
        let realm = tokens.realm();
        let bundle = tokens.cert.clone();
        Self::start(move |_| {
            (
                String::new(),
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    bundle.display()
                ),
            )
        })
    }

    /// `extra(dir)` returns (lines under `http:`, top-level sections).
    fn start(extra: impl Fn(&Path) -> (String, String)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spec-registry-variant-")
            .tempdir()
            .expect("tempdir");
        let (http_extra, top_extra) = extra(dir.path());
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage");
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{top_extra}",
                storage.display()
            );
            let path = dir.path().join("config.yml");
            std::fs::write(&path, config).expect("config");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("registry.log")).expect("log"))
                .spawn()
                .expect("docker-registry");
            let begin = Instant::now();
            while begin.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken or bad config
                }
                // Any HTTP answer (a TLS server answers plain HTTP with 400) means ready.
                if http_status(port, "/v2/").is_some() {
                    return Self {
                        dir,
                        child: Some(child),
                        port,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start: {log}");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for VariantRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

const SERVICE: &str = "spec-registry";
const ISSUER: &str = "spec-token-issuer";

/// The refresh token ("identity token") a [`TokenServer`] accepts.
pub const REFRESH_TOKEN: &str = "spec-refresh-token";

/// A token server: GET /token with the right basic credentials, or POST /token with
/// `grant_type=refresh_token` and [`REFRESH_TOKEN`], returns a signed JWT granting pull
/// and push on every repository listed at start; anything else is 401.
pub struct TokenServer {
    port: u16,
    cert: PathBuf,
    /// Each request: "METHOD TARGET" and, for a POST, a line with its body.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl TokenServer {
    pub fn start(user: &str, password: &str, repositories: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Certificate::generate(dir.path(), "token");
        let token = signed_token(&c, repositories);
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = answer(conn, &expected, &token, &log);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            cert: c.cert,
            requests,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(
    conn: TcpStream,
    expected_auth: &str,
    token: &str,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorized = false;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") && value.trim() == expected_auth {
                authorized = true;
            }
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 16)];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut entry = request_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    if request_line.starts_with("POST ") {
        let form: Vec<&str> = body.split('&').collect();
        authorized = form.contains(&"grant_type=refresh_token")
            && form.contains(&format!("refresh_token={REFRESH_TOKEN}").as_str());
        entry.push('\n');
        entry.push_str(&body);
    }
    if let Ok(mut l) = log.lock() {
        l.push(entry);
    }
    let (status, body) = if authorized {
        (
            "200 OK",
            json!({"token": token, "access_token": token, "expires_in": 3600}).to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#.to_string(),
        )
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// An RS256 JWT the registry accepts: the signing certificate in `x5c` (it is its own
/// root, listed in the registry's `rootcertbundle`), pull and push on `repositories`.
fn signed_token(c: &Certificate, repositories: &[&str]) -> String {
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&c.cert)
        .output()
        .expect("openssl x509");
    assert!(der.status.success());
    let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&der.stdout)]});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let access: Vec<_> = repositories
        .iter()
        .map(|r| json!({"type": "repository", "name": r, "actions": ["pull", "push"]}))
        .collect();
    let claims = json!({
        "iss": ISSUER, "sub": "spec-user", "aud": SERVICE,
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60,
        "jti": format!("spec-{now}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&c.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    sign.stdin
        .take()
        .expect("stdin")
        .write_all(signing_input.as_bytes())
        .expect("write");
    let out = sign.wait_with_output().expect("openssl dgst");
    assert!(out.status.success());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}
