//! Shared by `tests/admin.rs` and `tests/browser.rs`: a real gateway with its
//! admin port on 127.0.0.1:0 in front of the three demo backends of the
//! original design (Backend-A/B/C, weights 3/2/1), and a tiny client for the
//! admin API. Everything stays on loopback; every wait has a deadline.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::backend::BackendDef;
use api_gateway::demo::DemoBackend;
use api_gateway::Gateway;
use serde_json::Value;

use crate::support::{self, Response};

/// The demo backends' names and weights, in table order.
pub const BACKENDS: [(&str, u32); 3] = [("Backend-A", 3), ("Backend-B", 2), ("Backend-C", 1)];

/// A running gateway with admin and three demo backends.
pub struct Rig {
    pub gw: Gateway,
    pub demos: Vec<DemoBackend>,
    pub admin: SocketAddr,
    pub token: Option<String>,
}

impl Rig {
    /// Starts the rig; `tweak` may adjust the config before start.
    pub fn start_with(tweak: impl FnOnce(&mut api_gateway::Config)) -> Rig {
        let demos: Vec<DemoBackend> = BACKENDS
            .iter()
            .map(|(name, _)| DemoBackend::spawn(name, "127.0.0.1:0".parse().unwrap()).unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = demos.iter().map(DemoBackend::addr).collect();
        let mut c = support::config(&addrs);
        c.backends = BACKENDS
            .iter()
            .zip(&addrs)
            .map(|(&(name, weight), &addr)| BackendDef {
                name: name.into(),
                addr,
                weight,
                tls: None,
            })
            .collect();
        c.admin = Some("127.0.0.1:0".parse().unwrap());
        tweak(&mut c);
        let token = c.admin_token.clone();
        let gw = support::start(c);
        let admin = gw.admin_addr().expect("admin port enabled");
        Rig {
            gw,
            demos,
            admin,
            token,
        }
    }

    /// Starts the rig with the test defaults.
    pub fn start() -> Rig {
        Rig::start_with(|_| {})
    }

    /// The demo backend called `name`.
    pub fn demo(&self, name: &str) -> &DemoBackend {
        self.demos.iter().find(|d| d.name() == name).unwrap()
    }

    /// An admin request carrying the configured token (if any).
    pub fn call(&self, method: &str, path: &str, body: &str) -> Response {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        admin_request(self.admin, method, path, auth.as_deref(), body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.call("GET", path, "")
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        self.call("POST", path, body)
    }

    /// `GET /gateway/health`, asserted 200.
    pub fn health(&self) -> Value {
        let r = self.get("/gateway/health");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// The health entry of backend `name`.
    pub fn backend(&self, name: &str) -> Value {
        self.health()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no backend {name} in health"))
    }

    /// One proxied `GET /api/users` on a fresh connection.
    pub fn proxied(&self) -> Response {
        support::get(self.gw.listen_addr(), "/api/users")
    }

    /// One proxied `GET path` on a fresh connection.
    pub fn proxied_path(&self, path: &str) -> Response {
        support::get(self.gw.listen_addr(), path)
    }

    /// `x-backend` of each of the next `n` proxied requests.
    pub fn next_backends(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let r = self.proxied();
                assert_eq!(r.status, 200, "{}", r.text());
                r.header("x-backend").unwrap_or("-").to_string()
            })
            .collect()
    }
}

/// One admin request on a fresh connection. `Host` names the loopback admin
/// address, as a browser or curl would (the admin refuses other hosts when no
/// token is set: DNS-rebinding guard).
pub fn admin_request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> Response {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    support::request(admin, raw.as_bytes())
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
