//! A fake registry on 127.0.0.1 for the hostile-registry tests: it serves what a test
//! puts in it (blobs, manifests under tags, any bytes at all, so invalid images too) and
//! answers chosen paths however the test says: an endless body, bytes trickled one at a
//! time, a huge Content-Length, an endless error body, a bearer challenge whose token
//! service never stops talking. Every request is recorded. Stopped on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use crate::images;

/// How a response's body is sent.
#[derive(Clone, Debug)]
pub enum Body {
    /// These bytes, with their Content-Length.
    Bytes(Vec<u8>),
    /// `chunk` again and again until the client goes away, with no Content-Length (or
    /// with the one given), `delay` between chunks.
    Endless {
        chunk: Vec<u8>,
        delay: Duration,
        content_length: Option<u64>,
    },
    /// These bytes one at a time, `delay` apart, with their Content-Length.
    Trickle { bytes: Vec<u8>, delay: Duration },
}

/// One response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, body: Body) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// An endless run of `x` at full speed (no Content-Length).
    pub fn endless(status: u16) -> Self {
        Self::new(
            status,
            Body::Endless {
                chunk: vec![b'x'; 64 * 1024],
                delay: Duration::ZERO,
                content_length: None,
            },
        )
    }
}

/// A request as received: its method, path (with query) and headers (lower-cased names).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

type Override = Box<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

struct Shared {
    blobs: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// `repo:tag` → manifest digest.
    tags: Mutex<HashMap<String, String>>,
    overrides: Mutex<Vec<Override>>,
    requests: Mutex<Vec<Request>>,
    stop: AtomicBool,
}

/// A running fake registry.
pub struct FakeRegistry {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Default for FakeRegistry {
    fn default() -> Self {
        Self::start()
    }
}

impl FakeRegistry {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake registry");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::new(Shared {
            blobs: Mutex::default(),
            tags: Mutex::default(),
            overrides: Mutex::default(),
            requests: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(conn, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`, the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stores a blob; returns its descriptor (`mediaType`, `digest`, `size`).
    pub fn put_blob(&self, media_type: &str, data: &[u8]) -> serde_json::Value {
        let digest = images::digest(data);
        self.shared
            .blobs
            .lock()
            .unwrap()
            .insert(digest.clone(), (media_type.to_string(), data.to_vec()));
        json!({"mediaType": media_type, "digest": digest, "size": data.len()})
    }

    /// Serves `manifest` (any bytes) as `repo:tag` and by its digest; returns the digest.
    pub fn put_manifest(&self, repo_tag: &str, media_type: &str, manifest: &[u8]) -> String {
        let d = self.put_blob(media_type, manifest);
        let digest = d["digest"].as_str().unwrap().to_string();
        self.shared
            .tags
            .lock()
            .unwrap()
            .insert(repo_tag.to_string(), digest.clone());
        digest
    }

    /// Serves an image made of `config` (any bytes) and `layers` (tar bytes, gzipped
    /// here) as `repo:tag`; returns the manifest digest.
    pub fn put_image(&self, repo_tag: &str, config: &[u8], layers: &[Vec<u8>]) -> String {
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|tar| {
                self.put_blob(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    &images::Compression::Gzip.compress(tar),
                )
            })
            .collect();
        let config_desc = self.put_blob("application/vnd.oci.image.config.v1+json", config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": layer_descs,
        });
        self.put_manifest(
            repo_tag,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
    }

    /// The bytes of a blob or manifest it serves.
    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        self.shared
            .blobs
            .lock()
            .unwrap()
            .get(digest)
            .map(|(_, b)| b.clone())
    }

    /// Answers requests `f` picks (returning Some) its way, before anything else; later
    /// overrides go first.
    pub fn answer(&self, f: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static) {
        self.shared.overrides.lock().unwrap().insert(0, Box::new(f));
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// A valid image config for `diff_ids`.
pub fn config_for(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": images::host_arch(),
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

fn serve(conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        // Request bodies (uploads) are not expected; skip any declared one.
        if let Some(n) = headers
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            let _ = std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink());
        }
        let req = Request {
            method,
            path,
            headers,
        };
        s.requests.lock().unwrap().push(req.clone());
        let resp = {
            let overrides = s.overrides.lock().unwrap();
            overrides.iter().find_map(|f| f(&req))
        }
        .unwrap_or_else(|| content(s, &req));
        if !send(&mut out, &req, &resp, s) {
            return;
        }
    }
}

/// What the registry holds for `req`.
fn content(s: &Shared, req: &Request) -> Response {
    let path = req.path.split('?').next().unwrap_or("");
    if path == "/v2/" {
        return Response::new(200, Body::Bytes(b"{}".to_vec()));
    }
    let not_found = || {
        Response::new(
            404,
            Body::Bytes(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
            ),
        )
        .header("Content-Type", "application/json")
    };
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    let (repo, kind, reference) = match (rest.rfind("/manifests/"), rest.rfind("/blobs/")) {
        (Some(i), _) => (&rest[..i], "manifests", &rest[i + "/manifests/".len()..]),
        (None, Some(i)) => (&rest[..i], "blobs", &rest[i + "/blobs/".len()..]),
        _ => return not_found(),
    };
    let digest = if kind == "manifests" && !reference.starts_with("sha256:") {
        match s.tags.lock().unwrap().get(&format!("{repo}:{reference}")) {
            Some(d) => d.clone(),
            None => return not_found(),
        }
    } else {
        reference.to_string()
    };
    match s.blobs.lock().unwrap().get(&digest) {
        Some((mt, data)) => Response::new(200, Body::Bytes(data.clone()))
            .header("Content-Type", mt)
            .header("Docker-Content-Digest", &digest),
        None => not_found(),
    }
}

/// Writes `resp`; false when the connection cannot go on.
fn send(out: &mut TcpStream, req: &Request, resp: &Response, s: &Shared) -> bool {
    let reason = match resp.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let keep_alive = matches!(resp.body, Body::Bytes(_));
    match &resp.body {
        Body::Bytes(b) | Body::Trickle { bytes: b, .. } => {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()))
        }
        Body::Endless {
            content_length: Some(n),
            ..
        } => head.push_str(&format!("Content-Length: {n}\r\n")),
        Body::Endless { .. } => {}
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return false;
    }
    if req.method == "HEAD" {
        return keep_alive;
    }
    match &resp.body {
        Body::Bytes(b) => out.write_all(b).is_ok(),
        Body::Trickle { bytes, delay } => {
            for b in bytes {
                if s.stop.load(Ordering::SeqCst) || out.write_all(&[*b]).is_err() {
                    return false;
                }
                std::thread::sleep(*delay);
            }
            false
        }
        Body::Endless { chunk, delay, .. } => {
            while !s.stop.load(Ordering::SeqCst) && out.write_all(chunk).is_ok() {
                if !delay.is_zero() {
                    std::thread::sleep(*delay);
                }
            }
            false
        }
    }
}
