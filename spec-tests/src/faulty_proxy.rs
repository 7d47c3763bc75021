//! A small fault-injecting HTTP proxy on 127.0.0.1 in front of a registry, for the pull
//! and push tests: it forwards one request per connection (with its body, for pushes) and, for the first request (or the first
//! N requests) whose path contains a given string (a blob digest, `/manifests/`), cuts,
//! stalls or trickles the response, lies about its Content-Length, or answers with an
//! error status instead. It records every request head with the time it arrived, so a
//! test can check what the client asked for next (e.g. `Range: bytes=N-`) and when.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do to the first matching response.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Send the response head and N body bytes, then close the connection.
    CutAfter(usize),
    /// Send the response head and N body bytes, then hold the connection open until
    /// [`FaultyProxy::shutdown`].
    StallAfter(usize),
    /// Answer with this HTTP status (and `Retry-After: 1`) instead of forwarding.
    Status(u16),
    /// Forward the whole body, but `chunk` bytes at a time with `delay` between them.
    Trickle { chunk: usize, delay: Duration },
    /// Forward the whole body with a Content-Length header off by this many bytes
    /// (negative: shorter than the body, positive: longer), then close the connection.
    ContentLengthOff(i64),
    /// Do not forward: hold the request (its body read) until [`FaultyProxy::shutdown`].
    Hold,
}

struct Shared {
    upstream: u16,
    fault: Fault,
    target: String,
    /// Match requests of every method, not only GETs (their request line, which starts
    /// with the method, must contain `target`).
    any_method: bool,
    /// Matching requests still to be faulted.
    remaining: AtomicUsize,
    /// Whether requests with a Range header match too.
    ranged_too: bool,
    started: Instant,
    stalled: AtomicBool,
    stop: AtomicBool,
    requests: Mutex<Vec<(Duration, String)>>,
}

/// A running proxy; stopped on drop.
pub struct FaultyProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultyProxy {
    /// Proxies 127.0.0.1:`upstream`, applying `fault` to the first GET whose path contains
    /// `target` and that has no Range header.
    pub fn start(upstream: u16, fault: Fault, target: &str) -> Self {
        Self::start_inner(upstream, fault, target, 1, false, false)
    }

    /// Like [`FaultyProxy::start`] for the first request of any method whose request line
    /// (e.g. `PATCH /v2/repo/blobs/uploads/…`) contains `target`.
    pub fn start_any_method(upstream: u16, fault: Fault, target: &str) -> Self {
        Self::start_inner(upstream, fault, target, 1, false, true)
    }

    /// Proxies 127.0.0.1:`upstream`, applying `fault` to the first `times` GETs whose
    /// path contains `target`, resumed (Range) requests included: a fault that persists
    /// (`usize::MAX`), or one that needs several attempts to get through.
    pub fn start_repeating(upstream: u16, fault: Fault, target: &str, times: usize) -> Self {
        Self::start_inner(upstream, fault, target, times, true, false)
    }

    fn start_inner(
        upstream: u16,
        fault: Fault,
        target: &str,
        times: usize,
        ranged_too: bool,
        any_method: bool,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            upstream,
            fault,
            target: target.to_string(),
            any_method,
            remaining: AtomicUsize::new(times),
            ranged_too,
            started: Instant::now(),
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || {
                            let _ = handle(conn, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener is dropped here: new connections are refused from now on.
        });
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`, to use as the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request head seen so far (request line and headers).
    pub fn requests(&self) -> Vec<String> {
        self.timed_requests().into_iter().map(|(_, r)| r).collect()
    }

    /// Every request head seen so far with when it arrived (since the proxy started).
    pub fn timed_requests(&self) -> Vec<(Duration, String)> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The GET request heads whose request line contains `target`.
    pub fn gets_of(&self, target: &str) -> Vec<(Duration, String)> {
        self.timed_requests()
            .into_iter()
            .filter(|(_, r)| {
                r.starts_with("GET ") && r.lines().next().is_some_and(|l| l.contains(target))
            })
            .collect()
    }

    /// Waits until the stalled response is being held (true) or `timeout` passes.
    pub fn wait_stalled(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.shared.stalled.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Stops accepting (the port then refuses connections) and drops a stalled response.
    pub fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads up to the end of an HTTP head ("\r\n\r\n"); returns (head, bytes after it).
fn read_head(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too large"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if !buf[0].is_ascii_uppercase() {
            // Not HTTP (a TLS client hello from a scheme probe): give up at once.
            return Err(std::io::Error::other("not an HTTP request"));
        }
    }
}

fn handle(mut client: TcpStream, s: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (head, rest) = read_head(&mut client)?;
    if !head.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Ok(()); // not HTTP (e.g. a TLS probe): just close
    }
    let request_body = read_body(&mut client, &head, rest)?;
    if let Ok(mut r) = s.requests.lock() {
        r.push((s.started.elapsed(), head.clone()));
    }
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<&str> = lines
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let has_range = headers
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("range:"));
    let matches = (s.any_method || request_line.starts_with("GET "))
        && request_line.contains(&s.target)
        && (!has_range || s.ranged_too)
        && s.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let fault = if matches { Some(s.fault) } else { None };

    if let Some(Fault::Hold) = fault {
        s.stalled.store(true, Ordering::SeqCst);
        while !s.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    if let Some(Fault::Status(code)) = fault {
        write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", s.upstream))?;
    let mut out = request_line + "\r\n";
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes())?;
    upstream.write_all(&request_body)?;

    let (resp_head, mut body) = read_head(&mut upstream)?;
    if let Some(Fault::ContentLengthOff(off)) = fault {
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest)?;
        body.extend_from_slice(&rest);
        let lied = (body.len() as i64 + off).max(0);
        let head: String = resp_head
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("content-length:") {
                    format!("Content-Length: {lied}\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        client.write_all(head.as_bytes())?;
        client.write_all(b"\r\n")?;
        let _ = client.write_all(&body);
        let _ = client.flush();
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    client.write_all(resp_head.as_bytes())?;
    match fault {
        Some(Fault::Trickle { chunk, delay }) => {
            client.write_all(&body)?;
            let mut buf = vec![0u8; chunk.max(1)];
            loop {
                let got = upstream.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                client.write_all(&buf[..got])?;
                client.flush()?;
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(delay);
            }
        }
        None | Some(Fault::Status(_)) | Some(Fault::ContentLengthOff(_)) | Some(Fault::Hold) => {
            client.write_all(&body)?;
            std::io::copy(&mut upstream, &mut client)?;
        }
        Some(Fault::CutAfter(n)) | Some(Fault::StallAfter(n)) => {
            while body.len() < n {
                let mut chunk = vec![0u8; n - body.len()];
                let got = upstream.read(&mut chunk)?;
                if got == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..got]);
            }
            body.truncate(n);
            client.write_all(&body)?;
            client.flush()?;
            if let Some(Fault::StallAfter(_)) = fault {
                s.stalled.store(true, Ordering::SeqCst);
                while !s.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// The value of header `name` (lowercase) in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a request body (by Content-Length, or chunked transfer encoding kept as sent)
/// given the bytes already read after the head.
fn read_body(s: &mut TcpStream, head: &str, mut have: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let more = |s: &mut TcpStream, have: &mut Vec<u8>| -> std::io::Result<()> {
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed in the request body"));
        }
        have.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    if let Some(len) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        while have.len() < len {
            more(s, &mut have)?;
        }
        have.truncate(len);
        return Ok(have);
    }
    if !header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return Ok(Vec::new());
    }
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(i) = have[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            more(s, &mut have)?;
        };
        let size_text = String::from_utf8_lossy(&have[pos..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            while !have[line_end..].windows(4).any(|w| w == b"\r\n\r\n") {
                more(s, &mut have)?;
            }
            let end = line_end
                + have[line_end..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .unwrap_or(0)
                + 4;
            have.truncate(end);
            return Ok(have);
        }
        let next = line_end + 2 + size + 2;
        while have.len() < next {
            more(s, &mut have)?;
        }
        pos = next;
    }
}
