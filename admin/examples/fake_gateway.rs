//! A stand-in gateway for working on the dashboard without the real core:
//! `cargo run -p api-gateway-admin --example fake_gateway [admin-addr]`, then
//! open the printed URL.
//!
//! It answers the admin protocol from a simulated state and runs a toy data
//! plane (global token bucket, round robin over up backends, a 3-failure
//! breaker) plus three demo backends whose `POST /admin/crash` toggles crash
//! mode, so every dashboard control does something visible. It is a demo
//! harness, not a reference implementation: sequential, one mutex, no care
//! for performance.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use api_gateway_admin::{spawn, AdminConfig, BalanceSpec, Command, Envelope, LimitSpec, Reply};
use serde_json::{json, Value};

struct Backend {
    name: String,
    addr: SocketAddr,
    weight: u32,
    up: bool,
    crashed: Arc<AtomicBool>,
    /// CLOSED / OPEN / HALF_OPEN and when it last changed.
    circuit: &'static str,
    since: Instant,
    recent_failures: Vec<Instant>,
    requests: u64,
    failures: u64,
    ok: u64,
}

struct Sim {
    started: Instant,
    limiter: LimitSpec,
    balancer: BalanceSpec,
    tokens: f64,
    refilled: Instant,
    rr: usize,
    backends: Vec<Backend>,
    requests: u64,
    proxied: u64,
    limited: u64,
    broken: u64,
    errors: u64,
    s2xx: u64,
    s5xx: u64,
    accepted: u64,
    events: Vec<Value>,
}

impl Sim {
    fn event(&mut self, msg: String) {
        let at = self.started.elapsed().as_millis() as u64;
        self.events.push(json!({"at_ms": at, "message": msg}));
        if self.events.len() > 100 {
            self.events.remove(0);
        }
    }

    fn set_circuit(&mut self, i: usize, to: &'static str) {
        let from = self.backends[i].circuit;
        if from != to {
            self.backends[i].circuit = to;
            self.backends[i].since = Instant::now();
            let name = self.backends[i].name.clone();
            self.event(format!("circuit {name} {from} -> {to}"));
        }
    }

    /// Admits one request; returns the status and the backend that answered.
    fn handle(&mut self) -> (u16, Option<String>) {
        self.requests += 1;
        self.accepted += 1;
        // Every limiter is approximated by a token bucket of its own size.
        let (cap, rate) = match self.limiter {
            LimitSpec::TokenBucket {
                capacity,
                refill_per_sec,
            } => (capacity, refill_per_sec),
            LimitSpec::LeakyBucket {
                capacity,
                leak_per_sec,
            } => (capacity, leak_per_sec),
            LimitSpec::FixedWindow { limit, window_ms }
            | LimitSpec::SlidingLog { limit, window_ms }
            | LimitSpec::SlidingCounter { limit, window_ms } => {
                (limit, f64::from(limit) * 1000.0 / window_ms as f64)
            }
        };
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate)
            .min(f64::from(cap));
        self.refilled = now;
        if self.tokens < 1.0 {
            self.limited += 1;
            return (429, None);
        }
        self.tokens -= 1.0;
        for i in 0..self.backends.len() {
            if self.backends[i].circuit == "OPEN"
                && self.backends[i].since.elapsed() > Duration::from_secs(15)
            {
                self.set_circuit(i, "HALF_OPEN");
            }
        }
        let eligible: Vec<usize> = (0..self.backends.len())
            .filter(|&i| self.backends[i].up && self.backends[i].circuit != "OPEN")
            .collect();
        if eligible.is_empty() {
            self.broken += 1;
            self.s5xx += 1;
            return (503, None);
        }
        let pick = match self.balancer {
            BalanceSpec::WeightedRoundRobin => {
                let total: u32 = eligible.iter().map(|&i| self.backends[i].weight).sum();
                let mut slot = (self.rr as u32) % total.max(1);
                let mut chosen = eligible[0];
                for &i in &eligible {
                    if slot < self.backends[i].weight {
                        chosen = i;
                        break;
                    }
                    slot -= self.backends[i].weight;
                }
                chosen
            }
            _ => eligible[self.rr % eligible.len()],
        };
        self.rr += 1;
        self.proxied += 1;
        let crashed = self.backends[pick].crashed.load(Ordering::Relaxed);
        let b = &mut self.backends[pick];
        b.requests += 1;
        let name = b.name.clone();
        if crashed {
            b.failures += 1;
            self.errors += 1;
            self.s5xx += 1;
            let b = &mut self.backends[pick];
            b.recent_failures
                .retain(|t| t.elapsed() < Duration::from_secs(10));
            b.recent_failures.push(Instant::now());
            if b.recent_failures.len() >= 3 || b.circuit == "HALF_OPEN" {
                self.set_circuit(pick, "OPEN");
            }
            (500, Some(name))
        } else {
            b.ok += 1;
            self.s2xx += 1;
            if b.circuit == "HALF_OPEN" {
                self.set_circuit(pick, "CLOSED");
            }
            (200, Some(name))
        }
    }

    fn health(&self, listen: SocketAddr) -> Value {
        let mut rl = serde_json::to_value(&self.limiter).unwrap_or_default();
        rl["key"] = json!("ip");
        json!({
            "status": "ok",
            "uptime_ms": self.started.elapsed().as_millis() as u64,
            "listen": listen.to_string(),
            "pipeline": ["logger", "cors", "rate-limit", "circuit-breaker", "proxy"],
            "rateLimiter": rl,
            "loadBalancer": serde_json::to_value(&self.balancer).unwrap_or_default(),
            "circuitBreaker": {"failure_threshold": 3, "window_ms": 10000, "open_ms": 15000},
            "backends": self.backends.iter().map(|b| json!({
                "name": b.name, "address": b.addr.to_string(), "weight": b.weight, "up": b.up,
                "circuitState": b.circuit, "inflight": 0, "requests": b.requests,
                "failures": b.failures, "status": {"2xx": b.ok, "5xx": b.failures},
                "latency_ms": {"p50": 1, "p90": 2, "p99": 4},
            })).collect::<Vec<_>>(),
            "totals": {"requests": self.requests, "proxied": self.proxied,
                "rate_limited": self.limited, "circuit_broken": self.broken, "errors": self.errors,
                "status": {"1xx": 0, "2xx": self.s2xx, "3xx": 0, "4xx": self.limited, "5xx": self.s5xx}},
            "connections": {"open": 0, "accepted": self.accepted},
            "events": self.events,
        })
    }

    fn apply(&mut self, cmd: Command, listen: SocketAddr) -> Reply {
        let find = |sim: &Sim, n: &str| sim.backends.iter().position(|b| b.name == n);
        match cmd {
            Command::Health => Reply::Json(self.health(listen)),
            Command::Metrics => Reply::Text(format!(
                "# TYPE gateway_requests_total counter\ngateway_requests_total {}\n",
                self.requests
            )),
            Command::SetRateLimiter(spec) => {
                self.event(format!("rate limiter -> {}", spec.name()));
                self.limiter = spec;
                self.tokens = 0.0;
                Reply::Json(json!({"rateLimiter": self.limiter.name()}))
            }
            // The fake runs no shadow limiters.
            Command::ShadowReport => Reply::Json(json!({"enabled": false, "limiters": []})),
            Command::SetLoadBalancer(spec) => {
                self.event(format!("load balancer -> {}", spec.name()));
                self.balancer = spec;
                Reply::Json(json!({"loadBalancer": self.balancer.name()}))
            }
            Command::ToggleBackend(n) => match find(self, &n) {
                Some(i) => {
                    self.backends[i].up = !self.backends[i].up;
                    Reply::Json(json!({"backend": n, "up": self.backends[i].up}))
                }
                None => Reply::NotFound(format!("unknown backend '{n}'")),
            },
            Command::ResetCircuit(n) => match find(self, &n) {
                Some(i) => {
                    self.backends[i].recent_failures.clear();
                    self.set_circuit(i, "CLOSED");
                    Reply::Json(json!({"backend": n, "circuitState": "CLOSED"}))
                }
                None => Reply::NotFound(format!("unknown backend '{n}'")),
            },
            Command::ResetMetrics => {
                self.requests = 0;
                self.proxied = 0;
                self.limited = 0;
                self.broken = 0;
                self.errors = 0;
                self.s2xx = 0;
                self.s5xx = 0;
                for b in &mut self.backends {
                    (b.requests, b.failures, b.ok) = (0, 0, 0);
                }
                Reply::Json(json!({"reset": true}))
            }
            // The fake has no routes and one upstream, `default`.
            Command::Routes => Reply::Json(json!({"routing": false, "routes": []})),
            Command::Consumers => Reply::Json(json!({"consumers": []})),
            Command::ReloadTls => Reply::Invalid("the fake has no TLS listener".into()),
            Command::Config => Reply::Json(json!({"listen": "127.0.0.1:4000"})),
            Command::ReloadConfig | Command::ApplyConfig(_) => {
                Reply::Invalid("the fake has no config to reload".into())
            }
            Command::Upstreams => Reply::Json(json!({"upstreams": [{
                "name": "default",
                "loadBalancer": serde_json::to_value(&self.balancer).unwrap_or_default(),
            }]})),
            Command::SetUpstreamBalancer { upstream, spec } if upstream == "default" => {
                self.apply(Command::SetLoadBalancer(spec), listen)
            }
            Command::SetUpstreamBalancer { upstream, .. } => {
                Reply::NotFound(format!("no upstream named '{upstream}'"))
            }
            Command::SetRouteLimiter { route, .. } => {
                Reply::NotFound(format!("no route named '{route}'"))
            }
        }
    }
}

fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn respond(s: &mut TcpStream, status: u16, extra: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn main() -> std::io::Result<()> {
    let admin_addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into())
        .parse()
        .expect("admin address like 127.0.0.1:9100");
    let data = TcpListener::bind("127.0.0.1:0")?;
    let listen = data.local_addr()?;

    let mut backends = Vec::new();
    for (name, weight) in [("Backend-A", 3), ("Backend-B", 2), ("Backend-C", 1)] {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let crashed = Arc::new(AtomicBool::new(false));
        backends.push(Backend {
            name: name.into(),
            addr: l.local_addr()?,
            weight,
            up: true,
            crashed: Arc::clone(&crashed),
            circuit: "CLOSED",
            since: Instant::now(),
            recent_failures: Vec::new(),
            requests: 0,
            failures: 0,
            ok: 0,
        });
        thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                if read_head(&mut s).starts_with("POST /admin/crash") {
                    let now = !crashed.fetch_xor(true, Ordering::Relaxed);
                    respond(
                        &mut s,
                        200,
                        "",
                        &json!({"crashed": now, "server": name}).to_string(),
                    );
                } else {
                    respond(&mut s, 404, "", "{}");
                }
            }
        });
    }
    let sim = Arc::new(Mutex::new(Sim {
        started: Instant::now(),
        limiter: LimitSpec::default_for("token-bucket").expect("known"),
        balancer: BalanceSpec::RoundRobin,
        tokens: 20.0,
        refilled: Instant::now(),
        rr: 0,
        backends,
        requests: 0,
        proxied: 0,
        limited: 0,
        broken: 0,
        errors: 0,
        s2xx: 0,
        s5xx: 0,
        accepted: 0,
        events: Vec::new(),
    }));

    let plane = Arc::clone(&sim);
    thread::spawn(move || {
        for mut s in data.incoming().flatten() {
            let _ = read_head(&mut s);
            let (status, backend) = plane.lock().unwrap_or_else(|p| p.into_inner()).handle();
            let extra = backend
                .map(|b| format!("X-Backend: {b}\r\n"))
                .unwrap_or_default();
            respond(&mut s, status, &extra, "{}");
        }
    });

    let (tx, rx) = crossbeam_channel::bounded::<Envelope>(64);
    let admin = spawn(
        AdminConfig {
            addr: admin_addr,
            token: None,
            gateway_addr: listen,
        },
        tx,
    )?;
    println!("fake gateway data plane on http://{listen}/");
    println!("dashboard on http://{}/", admin.local_addr());
    for env in rx {
        let reply = sim
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(env.cmd, listen);
        let _ = env.reply.try_send(reply);
    }
    Ok(())
}
