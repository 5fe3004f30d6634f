//! Test support: start gateways and backends on loopback ephemeral ports,
//! and speak raw HTTP/1.1 over std sockets (so tests see exactly the bytes).
//!
//! Every blocking read has a timeout, every loop a bound: a broken gateway
//! fails a test, it never hangs it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::backend::BackendDef;
use api_gateway::config::AccessLogTarget;
use api_gateway::{Config, Gateway};

pub mod pki;

pub mod binary;

/// Upper bound for any single blocking socket operation in tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A test config: gateway on 127.0.0.1:0, no admin port, no access log,
/// generous limits, the given backends (weight 1).
pub fn config(backends: &[SocketAddr]) -> Config {
    let mut c = Config::demo();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin = None;
    c.access_log = AccessLogTarget::Off;
    // One worker: tests that reason about pooled backend connections or
    // per-worker counts must not depend on how SO_REUSEPORT hashes each new
    // client connection. tests/multicore.rs sets its own worker count.
    c.workers = 1;
    c.backends = backends
        .iter()
        .enumerate()
        .map(|(i, &addr)| BackendDef {
            name: format!("B{i}"),
            addr,
            weight: 1,
            tls: None,
        })
        .collect();
    // The breaker stays the demo's (`config::demo_breaker`: a 500 counts as a
    // failure, every circuit may open): tests/scenarios.rs, admin.rs,
    // soak.rs and browser.rs drive crashed demo backends that answer 500,
    // and faults.rs/limits.rs trip a lone backend. Tests of the production
    // defaults (tests/breaker_fairness.rs) set `BreakerSpec::default()`.
    c.circuit_breaker = api_gateway::config::demo_breaker();
    c.rate_limit.spec = api_gateway_admin::LimitSpec::TokenBucket {
        capacity: 1_000_000,
        refill_per_sec: 1_000_000.0,
    };
    c
}

/// Starts a gateway.
pub fn start(c: Config) -> Gateway {
    Gateway::start(c).expect("gateway starts")
}

/// Opens a client connection with timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A parsed HTTP response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The body was chunked on the wire.
    pub chunked: bool,
}

impl Response {
    /// First value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }

    /// Body as a string.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A client connection that reads responses one at a time.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client {
            reader: BufReader::new(connect(addr)),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream().write_all(bytes).expect("send");
    }

    /// Reads one response (interim 1xx responses are returned too).
    pub fn read(&mut self, head_request: bool) -> Response {
        read_response(&mut self.reader, head_request).expect("read response")
    }

    /// Sends a request and reads its (final) response.
    pub fn roundtrip(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        let head = raw.starts_with(b"HEAD ");
        loop {
            let r = self.read(head);
            if r.status >= 200 || r.status == 101 {
                return r;
            }
        }
    }

    /// Whether the server closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    Client::connect(addr).roundtrip(raw)
}

/// `GET path` with Host, on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

/// Every value of the field `name` (any case) in `headers`, in order.
fn values_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    let n = r.read_line(&mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one response with full framing rules.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    let status_line = read_line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {status_line:?}"),
        )
    })?;
    let mut resp = Response {
        status,
        ..Default::default()
    };
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').expect("header line");
        resp.headers
            .push((n.trim().to_string(), v.trim().to_string()));
    }
    let bodiless = head_request || status < 200 || status == 204 || status == 304;
    if bodiless {
        return Ok(resp);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.chunked = true;
        loop {
            let size_line = read_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    let t = read_line(r)?;
                    if t.is_empty() {
                        break;
                    }
                    let (n, v) = t.split_once(':').expect("trailer");
                    resp.trailers
                        .push((n.trim().to_string(), v.trim().to_string()));
                }
                break;
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(cl) = resp.header("content-length") {
        let n: usize = cl.parse().expect("content-length");
        resp.body.resize(n, 0);
        r.read_exact(&mut resp.body)?;
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// FNV-1a, enough to compare large bodies.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Deterministic pseudo-random bytes.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A request as the test backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub conn_id: usize,
}

impl Seen {
    /// Every value of the header `name` (any case), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real HTTP/1.1 backend with scripted routes, keep-alive, chunked
/// request bodies, and counters of connections and requests.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestBackend {
    pub fn start() -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c2, r2, s2) = (connections.clone(), requests.clone(), seen.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let id = c2.fetch_add(1, Ordering::SeqCst) + 1;
                let (r3, s3) = (r2.clone(), s2.clone());
                thread::spawn(move || serve_conn(stream, id, &r3, &s3));
            }
        });
        TestBackend {
            addr,
            connections,
            requests,
            seen,
        }
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The paths of every request that reached the backend, in order.
    pub fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }

    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request reached the backend")
    }
}

fn serve_conn(stream: TcpStream, id: usize, requests: &AtomicUsize, seen: &Mutex<Vec<Seen>>) {
    // The head and the body go out in two writes: without this, Nagle holds
    // the body back until the gateway acks the head (a delayed ack, 40 ms).
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    loop {
        let Ok(line) = read_line(&mut r) else { return };
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let version = if parts.next() == Some("HTTP/1.0") {
            0
        } else {
            1
        };
        let mut headers = Vec::new();
        loop {
            let Ok(l) = read_line(&mut r) else { return };
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let h = |name: &str| {
            headers
                .iter()
                .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if h("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            let _ = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        if h("transfer-encoding").is_some() {
            loop {
                let Ok(sl) = read_line(&mut r) else { return };
                let size = usize::from_str_radix(sl.split(';').next().unwrap().trim(), 16).unwrap();
                if size == 0 {
                    loop {
                        let Ok(t) = read_line(&mut r) else { return };
                        if t.is_empty() {
                            break;
                        }
                        let (n, v) = t.split_once(':').unwrap();
                        trailers.push((n.trim().to_string(), v.trim().to_string()));
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                if r.read_exact(&mut body[start..]).is_err() {
                    return;
                }
                let mut crlf = [0u8; 2];
                if r.read_exact(&mut crlf).is_err() {
                    return;
                }
            }
        } else if let Some(cl) = h("content-length") {
            body.resize(cl.parse().unwrap(), 0);
            if r.read_exact(&mut body).is_err() {
                return;
            }
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let s = Seen {
            method: method.clone(),
            path: path.clone(),
            version,
            headers: headers.clone(),
            body,
            trailers,
            conn_id: id,
        };
        seen.lock().unwrap().push(s.clone());
        if !respond(&mut w, &mut r, &s) {
            return;
        }
        if h("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

/// Writes the scripted response for `s`; false ends the connection.
fn respond(w: &mut TcpStream, r: &mut BufReader<TcpStream>, s: &Seen) -> bool {
    let (route, query) = s.path.split_once('?').unwrap_or((s.path.as_str(), ""));
    let q: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let num = |k: &str, d: usize| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let head_only = s.method == "HEAD";
    let send = |w: &mut TcpStream, status: u16, extra: &str, body: &[u8]| -> bool {
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        );
        w.write_all(head.as_bytes()).is_ok() && (head_only || w.write_all(body).is_ok())
    };
    match route {
        "/echo" => send(w, 200, "X-Echo: yes\r\n", &s.body),
        "/headers" => {
            let v = serde_json::json!({
                "method": s.method, "path": s.path, "version": s.version,
                "headers": s.headers.iter().map(|(n, v)| vec![n.clone(), v.clone()]).collect::<Vec<_>>(),
                "trailers": s.trailers.iter().map(|(n, v)| vec![n.clone(), v.clone()]).collect::<Vec<_>>(),
                "body_len": s.body.len(), "conn": s.conn_id,
            });
            send(
                w,
                200,
                "Content-Type: application/json\r\n",
                v.to_string().as_bytes(),
            )
        }
        "/chunked" => {
            let parts = num("parts", 3);
            let mut out =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                    .to_vec();
            let mut all = Vec::new();
            for i in 0..parts {
                let chunk = format!("part-{i};");
                all.extend_from_slice(chunk.as_bytes());
                out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
            }
            out.extend_from_slice(format!("0\r\nX-Checksum: {}\r\n\r\n", hash(&all)).as_bytes());
            w.write_all(&out).is_ok()
        }
        "/status" => {
            let code = num("code", 200) as u16;
            match code {
                204 | 304 => w
                    .write_all(format!("HTTP/1.1 {code} X\r\nX-Status: {code}\r\n\r\n").as_bytes())
                    .is_ok(),
                _ => send(w, code, "", format!("status {code}").as_bytes()),
            }
        }
        "/big" => {
            let n = num("n", 1 << 20);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            if w.write_all(head.as_bytes()).is_err() {
                return false;
            }
            if head_only {
                return true;
            }
            let block = pattern(64 * 1024, 7);
            let mut left = n;
            while left > 0 {
                let k = left.min(block.len());
                if w.write_all(&block[..k]).is_err() {
                    return false;
                }
                left -= k;
            }
            true
        }
        "/close-delimited" => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close body");
            let _ = w.shutdown(Shutdown::Write);
            false
        }
        "/slow" => {
            thread::sleep(Duration::from_millis(num("ms", 1000) as u64));
            send(w, 200, "", b"slow")
        }
        "/ws" => {
            if w
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .is_err()
            {
                return false;
            }
            // Echo bytes upper-cased until EOF.
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = w.shutdown(Shutdown::Write);
                        return false;
                    }
                    Ok(n) => {
                        if w.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                            return false;
                        }
                    }
                }
            }
        }
        _ => send(w, 200, "", format!("{} {}", s.method, s.path).as_bytes()),
    }
}

/// A backend that runs `script` on every accepted connection (faults).
pub struct RawBackend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl RawBackend {
    pub fn start(script: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let c2 = connections.clone();
        let script = Arc::new(script);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
                let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
                let script = script.clone();
                thread::spawn(move || script(stream, n));
            }
        });
        RawBackend { addr, connections }
    }
}

/// A keep-alive backend on raw sockets: every request head (bodies are not
/// read: GETs) is answered with `answer(path)`'s status and the body `ok`.
/// The closure may take its time (a slow backend) or count what it sees.
pub fn answering(answer: impl Fn(&str) -> u16 + Send + Sync + 'static) -> SocketAddr {
    RawBackend::start(move |stream, _| {
        stream.set_nodelay(true).ok();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        loop {
            let Ok(line) = read_line(&mut r) else { return };
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            loop {
                match read_line(&mut r) {
                    Ok(l) if l.is_empty() => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            let status = answer(&path);
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
            if w.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    })
    .addr
}

/// Reads a request head (up to the blank line) from a raw backend socket.
pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// An address nothing listens on.
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Polls `cond` every few ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// The strings of a JSON list (panics on anything else).
pub fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Value of series `series` (name plus exact label set) in a Prometheus text.
pub fn prom(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}
