//! Demo backends: small HTTP/1.1 servers (a std thread per keep-alive
//! connection; never on the gateway's data path) that name themselves in
//! every answer and can be "crashed" on command, so load balancing and
//! circuit breaking are visible in a minute.
//!
//! Routes: `GET /api/users` (sample JSON naming the server), `GET
//! /api/health` (`"crashed": false`), `GET /health` (the gateway's active
//! health check: 200 `{"status":"ok","server":NAME}`, or at once 500 while
//! crashed, so a crashed backend fails its checks), `POST /admin/crash` (toggles crash
//! mode: every `/api` request then answers 500, with `"crashed": true`, after
//! a slow 300 ms; only with `X-Demo-Admin: 1` and sent to the backend's own
//! port, else 403, so neither a cross-site page nor a request through the
//! gateway can trigger it), `GET /admin/crash` (reads the crash flag, never affected by
//! it, so a dashboard can label its Crash/Recover button from the truth),
//! anything else under `/` echoes the method and path.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// How long a crashed backend takes to fail (the "slow" in slow 500s).
pub const CRASH_DELAY: Duration = Duration::from_millis(300);

/// Largest request head a demo backend reads.
const MAX_HEAD: usize = 16 * 1024;

// One thread per connection, not tiny_http: its connection pool can queue a
// new connection behind threads that are parked on idle keep-alive
// connections (two accepts racing one idle thread's wake-up), and a gateway
// keeps its backend connections pooled, so such a request waited until a
// connection closed; in a burst some were never answered (504 at the gateway).

/// A running demo backend.
pub struct DemoBackend {
    name: String,
    addr: SocketAddr,
    crashed: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Open client connections (by serial), shut down on drop to unblock
    /// their threads.
    open: Arc<Open>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DemoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBackend")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

type Open = Mutex<HashMap<u64, TcpStream>>;

/// What a connection thread needs.
#[derive(Clone)]
struct Ctx {
    name: Arc<str>,
    addr: SocketAddr,
    crashed: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
}

impl DemoBackend {
    /// Starts a demo backend called `name` on `addr` (port 0 for any).
    pub fn spawn(name: &str, addr: SocketAddr) -> io::Result<DemoBackend> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("demo backend {name} on {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        let ctx = Ctx {
            name: name.into(),
            addr,
            crashed: Arc::new(AtomicBool::new(false)),
            served: Arc::new(AtomicU64::new(0)),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(HashMap::new()));
        let (c, s, o) = (ctx.clone(), stop.clone(), open.clone());
        let acceptor = thread::Builder::new()
            .name(format!("demo-{name}"))
            .spawn(move || accept_loop(&listener, &c, &s, &o))?;
        Ok(DemoBackend {
            name: name.to_string(),
            addr,
            crashed: ctx.crashed,
            served: ctx.served,
            stop,
            open,
            acceptor: Some(acceptor),
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether crash mode is on.
    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::Relaxed)
    }

    /// Sets crash mode.
    pub fn set_crashed(&self, on: bool) {
        self.crashed.store(on, Ordering::Relaxed);
    }

    /// Requests served so far, health checks (`GET /health`) aside: tests
    /// count traffic with it, and a gateway's probes are not traffic.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept, then end every connection's blocking read.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for (_, s) in lock(&self.open).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, ctx: &Ctx, stop: &AtomicBool, open: &Arc<Open>) {
    for (serial, stream) in (0u64..).zip(listener.incoming()) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        lock(open).insert(serial, handle);
        let (ctx, registry) = (ctx.clone(), open.clone());
        let spawned = thread::Builder::new()
            .name(format!("demo-{}-conn", ctx.name))
            .spawn(move || {
                serve_conn(stream, &ctx);
                // Dropping the last handle closes the socket.
                lock(&registry).remove(&serial);
            });
        if spawned.is_err() {
            lock(open).remove(&serial);
        }
    }
}

fn lock(open: &Open) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves requests on one keep-alive connection until the client closes it,
/// asks for `Connection: close`, or sends something this server cannot frame.
fn serve_conn(stream: TcpStream, ctx: &Ctx) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        head.clear();
        // Read up to the blank line that ends the head.
        while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
            match input.read_until(b'\n', &mut head) {
                Ok(0) | Err(_) => return,
                Ok(_) if head.len() > MAX_HEAD => return,
                Ok(_) if head == b"\r\n" || head == b"\n" => head.clear(),
                Ok(_) => {}
            }
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            let _ = respond(&mut out, 400, &json!({"error": "bad request"}), true);
            return;
        }
        let method = req.method.unwrap_or("").to_string();
        let path = req
            .path
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string();
        let field = |n: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(n))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let close =
            field("connection").is_some_and(|v| v.contains("close")) || req.version == Some(0);
        // Drain the body so keep-alive framing stays intact.
        let bytes = if field("transfer-encoding").is_some() {
            // The gateway only forwards a lone `chunked` coding.
            match drain_chunked(&mut input) {
                Some(n) => n,
                None => {
                    let _ = respond(&mut out, 400, &json!({"error": "bad chunked body"}), true);
                    return;
                }
            }
        } else {
            let len: u64 = match field("content-length").map(|v| v.parse()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    let _ = respond(&mut out, 400, &json!({"error": "bad content-length"}), true);
                    return;
                }
            };
            match io::copy(&mut (&mut input).take(len), &mut io::sink()) {
                Ok(n) if n == len => n,
                _ => return,
            }
        };
        if !is_health_check(&method, &path) {
            ctx.served.fetch_add(1, Ordering::Relaxed);
        }
        let asked = Asker {
            demo_admin: field(DEMO_ADMIN_HEADER),
            host: field("host"),
        };
        let (status, body) = route(ctx, &method, &path, bytes, &asked);
        if respond(&mut out, status, &body, close).is_err() || close {
            return;
        }
    }
}

/// Reads a chunked body (sizes, data, trailers) and returns its payload
/// length; `None` on malformed framing or a closed connection.
fn drain_chunked(input: &mut BufReader<TcpStream>) -> Option<u64> {
    let mut total = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).ok()? == 0 || line.len() > MAX_HEAD {
            return None;
        }
        let text = std::str::from_utf8(&line).ok()?;
        let size_text = text.split(';').next()?.trim();
        let size = u64::from_str_radix(size_text, 16).ok()?;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                line.clear();
                if input.read_until(b'\n', &mut line).ok()? == 0 || line.len() > MAX_HEAD {
                    return None;
                }
                if line == b"\r\n" || line == b"\n" {
                    return Some(total);
                }
            }
        }
        let copied = io::copy(&mut input.take(size), &mut io::sink()).ok()?;
        if copied < size {
            return None;
        }
        total += size;
        let mut crlf = [0u8; 2];
        input.read_exact(&mut crlf).ok()?;
        if &crlf != b"\r\n" {
            return None;
        }
    }
}

fn respond(out: &mut TcpStream, status: u16, body: &Value, close: bool) -> io::Result<()> {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Internal Server Error",
    };
    let mut msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    msg.push_str(&body);
    out.write_all(msg.as_bytes())
}

/// The header a demo admin action (`POST /admin/crash`) must carry. A web
/// page cannot add a custom header to a cross-site request without a CORS
/// preflight the demo backend never grants, so a page a developer happens
/// to visit cannot crash their demo backends.
pub const DEMO_ADMIN_HEADER: &str = "x-demo-admin";

/// What a demo admin action is checked against.
struct Asker {
    /// `X-Demo-Admin`, lower-cased.
    demo_admin: Option<String>,
    /// `Host`, lower-cased.
    host: Option<String>,
}

/// Why a demo admin action is refused, if it is: it needs `X-Demo-Admin: 1`,
/// and a `Host` naming the backend's own port. The gateway forwards `Host`
/// unchanged, so a request that came through the gateway's port (where a
/// page could reach it) names that port and is refused.
fn refuse_admin_action(ctx: &Ctx, asked: &Asker) -> Option<String> {
    if asked.demo_admin.as_deref() != Some("1") {
        return Some("demo admin actions need the header X-Demo-Admin: 1".into());
    }
    let port = asked.host.as_deref().map(host_port);
    if port != Some(ctx.addr.port()) {
        return Some(format!(
            "demo admin actions are only accepted on this backend's own port {}",
            ctx.addr.port()
        ));
    }
    None
}

/// The port a `Host` value names (80 when it names none); 0 if unparsable.
fn host_port(host: &str) -> u16 {
    let port = match host.strip_prefix('[') {
        // `[::1]:3001`: the port follows the bracket.
        Some(v6) => v6
            .split_once(']')
            .and_then(|(_, rest)| rest.strip_prefix(':')),
        None => host.rsplit_once(':').map(|(_, p)| p),
    };
    match port {
        None => 80,
        Some(p) => p.parse().unwrap_or(0),
    }
}

fn route(ctx: &Ctx, method: &str, path: &str, body_len: u64, asked: &Asker) -> (u16, Value) {
    let (name, addr, crashed) = (&*ctx.name, ctx.addr, &ctx.crashed);
    if method == "POST" && path == "/admin/crash" {
        if let Some(why) = refuse_admin_action(ctx, asked) {
            log::warn!("demo {name}: refused POST /admin/crash: {why}");
            return (403, json!({"error": why, "server": name}));
        }
        let now = !crashed.fetch_xor(true, Ordering::Relaxed);
        log::info!("demo {name}: crash mode {}", if now { "ON" } else { "OFF" });
        (200, json!({"server": name, "crashed": now}))
    } else if method == "GET" && path == "/admin/crash" {
        let now = crashed.load(Ordering::Relaxed);
        (200, json!({"server": name, "crashed": now}))
    } else if is_health_check(method, path) {
        // Not slowed like the crashed `/api` answers: a check's verdict
        // should be the status, not its timeout.
        if crashed.load(Ordering::Relaxed) {
            (500, json!({"status": "crashed", "server": name}))
        } else {
            (200, json!({"status": "ok", "server": name}))
        }
    } else if crashed.load(Ordering::Relaxed) && path.starts_with("/api") {
        thread::sleep(CRASH_DELAY);
        (
            500,
            json!({"error": "internal server error (crash mode)", "server": name, "crashed": true}),
        )
    } else if path == "/api/users" {
        (200, users(name, addr))
    } else if path == "/api/health" {
        (
            200,
            json!({"status": "healthy", "server": name, "port": addr.port(), "crashed": false}),
        )
    } else {
        (
            200,
            json!({"server": name, "method": method, "path": path, "bytes": body_len}),
        )
    }
}

/// Whether a request is the gateway's active health check.
fn is_health_check(method: &str, path: &str) -> bool {
    method == "GET" && path == "/health"
}

fn users(name: &str, addr: SocketAddr) -> serde_json::Value {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "server": name,
        "port": addr.port(),
        "timestamp": ts,
        "users": [
            {"id": 1, "name": "Ada Lovelace", "role": "admin"},
            {"id": 2, "name": "Alan Turing", "role": "engineer"},
            {"id": 3, "name": "Grace Hopper", "role": "engineer"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(host_port("127.0.0.1:3001"), 3001);
        assert_eq!(host_port("localhost"), 80);
        assert_eq!(host_port("[::1]:3002"), 3002);
        assert_eq!(host_port("[::1]"), 80);
        assert_eq!(host_port("a:b"), 0);
    }
}
