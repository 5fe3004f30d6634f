//! Demo backends: small HTTP servers (tiny_http, never on the gateway's data
//! path) that name themselves in every answer and can be "crashed" on
//! command, so load balancing and circuit breaking are visible in a minute.
//!
//! Routes: `GET /api/users` (sample JSON naming the server), `GET
//! /api/health` (`"crashed": false`), `POST /admin/crash` (toggles crash
//! mode: every `/api` request then answers 500, with `"crashed": true`, after
//! a slow 300 ms), `GET /admin/crash` (reads the crash flag, never affected by
//! it, so a dashboard can label its Crash/Recover button from the truth),
//! anything else under `/` echoes the method and path.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tiny_http::{Header, Method, Response, Server};

/// How long a crashed backend takes to fail (the "slow" in slow 500s).
pub const CRASH_DELAY: Duration = Duration::from_millis(300);

const THREADS: usize = 8;

/// A running demo backend.
pub struct DemoBackend {
    name: String,
    addr: SocketAddr,
    crashed: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for DemoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBackend")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl DemoBackend {
    /// Starts a demo backend called `name` on `addr` (port 0 for any).
    pub fn spawn(name: &str, addr: SocketAddr) -> io::Result<DemoBackend> {
        let server = Server::http(addr).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("demo backend {name} on {addr}: {e}"),
            )
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("demo backend has no IP address"))?;
        let server = Arc::new(server);
        let crashed = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let threads = (0..THREADS)
            .map(|i| {
                let (server, crashed, served, name) = (
                    server.clone(),
                    crashed.clone(),
                    served.clone(),
                    name.to_string(),
                );
                thread::Builder::new()
                    .name(format!("demo-{name}-{i}"))
                    .spawn(move || serve(&server, &name, addr, &crashed, &served))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(DemoBackend {
            name: name.to_string(),
            addr,
            crashed,
            served,
            server,
            threads,
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

    /// Requests served so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for DemoBackend {
    fn drop(&mut self) {
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(server: &Server, name: &str, addr: SocketAddr, crashed: &AtomicBool, served: &AtomicU64) {
    let json_header =
        Header::from_bytes("Content-Type", "application/json").expect("static header");
    while let Ok(mut req) = server.recv() {
        served.fetch_add(1, Ordering::Relaxed);
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let method = req.method().clone();
        // Drain the body so keep-alive framing stays intact.
        let mut sink = Vec::new();
        let _ = io::Read::read_to_end(&mut req.as_reader(), &mut sink);
        let (status, body) = if method == Method::Post && path == "/admin/crash" {
            let now = !crashed.fetch_xor(true, Ordering::Relaxed);
            log::info!("demo {name}: crash mode {}", if now { "ON" } else { "OFF" });
            (200, json!({"server": name, "crashed": now}))
        } else if method == Method::Get && path == "/admin/crash" {
            let now = crashed.load(Ordering::Relaxed);
            (200, json!({"server": name, "crashed": now}))
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
                json!({"server": name, "method": method.as_str(), "path": path, "bytes": sink.len()}),
            )
        };
        let resp = Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(json_header.clone());
        let _ = req.respond(resp);
    }
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
