//! What the admin answers: authentication, body reading, dispatch to the
//! gateway over the command channel, and JSON/text responses. How bytes are
//! read and written (and the limits on them) is `conn`'s business.
//!
//! Invariants: every error answer is JSON `{"error": "..."}`; the admin never
//! waits on the gateway longer than the reply timeout (→ 503), so a stuck
//! event loop cannot wedge the control plane; at most one load test runs at a
//! time, so the dashboard cannot multiply its thread count by accident.
//! Request checks run in order: Host (DNS rebinding), token, Origin (CSRF).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{bounded, SendTimeoutError, Sender};
use serde_json::{json, Value};

use crate::auth::{authorized, host_allowed, origin_allowed};
use crate::client::{one_shot, Timeouts};
use crate::conn::{BodyError, Conn, Head, HeadError};
use crate::events::EventLog;
use crate::loadtest::{self, Plan};
use crate::protocol::{Command, Envelope, Reply};
use crate::routes::{command_for, resolve, Route, RouteError};

/// Content type of `GET /metrics` (Prometheus text exposition format).
const PROMETHEUS: &str = "text/plain; version=0.0.4";
const JSON: &str = "application/json";
/// What a demo backend requires on `POST /admin/crash` (a header a
/// cross-site page cannot send; the `Host` one_shot sends names the backend's
/// own port, which it also requires).
const DEMO_ADMIN: (&str, &str) = ("X-Demo-Admin", "1");
/// Timeouts for talking to a demo backend's `/admin/crash`.
const DEMO_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    io: Duration::from_secs(5),
};

/// State shared by the admin's connection threads.
pub(crate) struct Shared {
    pub token: Option<String>,
    pub gateway_addr: SocketAddr,
    pub commands: Sender<Envelope>,
    pub notify: Option<Arc<dyn Fn() + Send + Sync>>,
    pub reply_timeout: Duration,
    pub events: EventLog,
    /// Set on shutdown: stops the accept loop and cancels a running load test.
    pub stop: Arc<AtomicBool>,
    /// Held for the duration of a load test.
    pub loadtest: Mutex<()>,
}

/// A response about to be written.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub extra: Vec<(&'static str, String)>,
}

impl Answer {
    fn json(status: u16, v: &Value) -> Answer {
        Answer {
            status,
            content_type: JSON,
            body: v.to_string().into_bytes(),
            extra: Vec::new(),
        }
    }

    fn error(status: u16, msg: impl Into<String>) -> Answer {
        Answer::json(status, &json!({ "error": msg.into() }))
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.extra.push((name, value.into()));
        self
    }
}

/// Serves one connection's one request end to end (on its own thread).
pub(crate) fn serve(shared: &Shared, mut conn: Conn) {
    let limits = *conn.limits();
    let (answer, head_only) = match conn.read_head() {
        // Closed, reset or evicted: there is nobody to answer.
        Err(HeadError::Gone) => return,
        Err(HeadError::TimedOut) => (
            Answer::error(
                408,
                format!(
                    "request head not complete within {} ms",
                    limits.header_timeout.as_millis()
                ),
            ),
            false,
        ),
        Err(HeadError::TooLarge) => (
            Answer::error(
                431,
                format!("request head larger than {} bytes", limits.max_head_bytes),
            ),
            false,
        ),
        Err(HeadError::Malformed) => (Answer::error(400, "malformed request head"), false),
        Ok(head) => {
            let head_only = head.method.eq_ignore_ascii_case("HEAD");
            (answer(shared, &mut conn, &head), head_only)
        }
    };
    let mut headers = vec![("Content-Type", answer.content_type.to_string())];
    // Live data and control actions: never let a browser or proxy cache them.
    headers.push(("Cache-Control", "no-store".into()));
    headers.extend(answer.extra);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    conn.respond(answer.status, &headers, &answer.body, head_only);
}

fn answer(shared: &Shared, conn: &mut Conn, req: &Head) -> Answer {
    let token = shared.token.as_deref();
    let host = req.header("Host");
    if !host_allowed(token, host) {
        return Answer::error(
            403,
            "Host must be a loopback address (localhost, 127.0.0.1, [::1]) when no admin token is set",
        );
    }
    let method = req.method.to_ascii_uppercase();
    // The dashboard's static files hold no data, so a plain browser may load
    // them without the token (it cannot send a header on navigation); the
    // page then reads the token from `/#token=...` and sends it on every API
    // call, each of which is still checked below.
    let static_file = method == "GET" && is_dashboard_file(&req.target);
    if !static_file && !authorized(token, req.header("Authorization")) {
        return Answer::error(401, "missing or wrong bearer token")
            .with("WWW-Authenticate", "Bearer realm=\"api-gateway admin\"");
    }
    if method != "GET" && !origin_allowed(req.header("Origin"), host) {
        return Answer::error(403, "cross-origin request refused");
    }
    let route = match resolve(&method, &req.target) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            return Answer::error(404, format!("no such endpoint: {}", req.target))
        }
        Err(RouteError::MethodNotAllowed(allow)) => {
            return Answer::error(405, format!("method {method} not allowed; use {allow}"))
                .with("Allow", allow)
        }
    };
    let body = match route {
        Route::ApplyConfig => read_config_body(conn, req),
        _ => read_body(conn, req),
    };
    let body = match body {
        Ok(b) => b,
        Err(a) => return a,
    };
    // The request is complete: a flood of new connections cannot evict it.
    conn.answering();
    dispatch(shared, &route, body.as_ref())
}

/// Whether `target` names one of the embedded dashboard files.
fn is_dashboard_file(target: &str) -> bool {
    let path = target.split(['?', '#']).next().unwrap_or("");
    crate::dashboard::asset(path).is_some()
}

/// Reads an optional JSON body: empty means `None`.
fn read_body(conn: &mut Conn, req: &Head) -> Result<Option<Value>, Answer> {
    let max = conn.limits().max_body_bytes;
    let raw = read_raw(conn, req, max)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| Answer::error(400, format!("invalid JSON body: {e}")))
}

/// Reads the body of `POST /gateway/config` as text (up to
/// `max_config_bytes`), handed on as a JSON string: the gateway parses it,
/// with its own checks (duplicate keys, every field's name in errors).
fn read_config_body(conn: &mut Conn, req: &Head) -> Result<Option<Value>, Answer> {
    let max = conn.limits().max_config_bytes;
    let raw = read_raw(conn, req, max)?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    String::from_utf8(raw)
        .map(|text| Some(Value::String(text)))
        .map_err(|_| Answer::error(400, "the config must be UTF-8 JSON"))
}

fn read_raw(conn: &mut Conn, req: &Head, max: usize) -> Result<Vec<u8>, Answer> {
    let limits = *conn.limits();
    conn.read_body_up_to(req, max).map_err(|e| match e {
        BodyError::TooLarge => Answer::error(413, format!("body larger than {max} bytes")),
        BodyError::TimedOut => Answer::error(
            408,
            format!(
                "request body not complete within {} ms",
                limits.body_timeout.as_millis()
            ),
        ),
        BodyError::Unframed => Answer::error(
            411,
            "send the body with Content-Length (Transfer-Encoding is not accepted)",
        ),
        BodyError::BadLength => Answer::error(400, "malformed Content-Length"),
        BodyError::Gone => Answer::error(400, "connection closed before the body was complete"),
    })
}

fn dispatch(shared: &Shared, route: &Route, body: Option<&Value>) -> Answer {
    let cmd = match command_for(route, body) {
        Err(msg) => return Answer::error(400, msg),
        Ok(Some(cmd)) => cmd,
        Ok(None) => return local(shared, route, body),
    };
    let what = describe(&cmd);
    match ask(shared, cmd) {
        Err(a) => a,
        Ok(reply) => {
            let ok = matches!(reply, Reply::Json(_) | Reply::Text(_));
            if let (true, Some((kind, msg))) = (ok, what) {
                shared.events.push(kind, msg);
            }
            from_reply(reply)
        }
    }
}

/// Event-log kind and message for commands that change something.
fn describe(cmd: &Command) -> Option<(&'static str, String)> {
    Some(match cmd {
        Command::Health
        | Command::Metrics
        | Command::Routes
        | Command::ShadowReport
        | Command::Upstreams
        | Command::Consumers
        | Command::Trace(_)
        | Command::Traces => return None,
        Command::ReloadTls => ("tls", "TLS certificates reloaded".to_string()),
        // The gateway logs each reload itself (with what changed), for
        // SIGHUP too.
        Command::Config | Command::ReloadConfig | Command::ApplyConfig(_) => return None,
        Command::SetRateLimiter(s) => (
            "rate-limiter",
            format!(
                "rate limiter -> {}{}",
                s.name(),
                params_text(serde_json::to_value(s))
            ),
        ),
        Command::SetLoadBalancer(s) => (
            "load-balancer",
            format!(
                "load balancer -> {}{}",
                s.name(),
                params_text(serde_json::to_value(s))
            ),
        ),
        Command::SetUpstreamBalancer { upstream, spec } => (
            "load-balancer",
            format!(
                "load balancer of upstream {upstream} -> {}{}",
                spec.name(),
                params_text(serde_json::to_value(spec))
            ),
        ),
        Command::SetRouteLimiter { route, spec } => (
            "rate-limiter",
            format!(
                "rate limiter of route {route} -> {}{}",
                spec.name(),
                params_text(serde_json::to_value(spec))
            ),
        ),
        Command::ToggleBackend(n) => ("toggle", format!("toggled backend {n}")),
        Command::ResetCircuit(n) => ("circuit-reset", format!("reset circuit of {n}")),
        Command::ResetMetrics => ("metrics-reset", "reset all metrics".to_string()),
    })
}

/// ` (capacity 20, refill_per_sec 2)` from a spec's JSON form: the event log
/// is read by people, so no braces or the repeated algorithm name.
fn params_text(v: serde_json::Result<Value>) -> String {
    let Ok(Value::Object(fields)) = v else {
        return String::new();
    };
    let parts: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "algorithm")
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Sends `cmd` to the gateway and waits for its reply, bounded by the reply
/// timeout on both the send (the channel is bounded) and the receive.
pub(crate) fn ask(shared: &Shared, cmd: Command) -> Result<Reply, Answer> {
    let (tx, rx) = bounded(1);
    let env = Envelope { cmd, reply: tx };
    match shared.commands.send_timeout(env, shared.reply_timeout) {
        Ok(()) => {}
        Err(SendTimeoutError::Timeout(_)) => {
            return Err(Answer::error(503, "gateway command queue is full"))
        }
        Err(SendTimeoutError::Disconnected(_)) => {
            return Err(Answer::error(503, "gateway is not running"))
        }
    }
    // Send first, then wake: a wake before the send could be consumed while
    // the channel is still empty (STYLE §2.16).
    if let Some(notify) = &shared.notify {
        notify();
    }
    rx.recv_timeout(shared.reply_timeout).map_err(|_| {
        Answer::error(
            503,
            format!(
                "gateway did not answer within {} ms",
                shared.reply_timeout.as_millis()
            ),
        )
    })
}

fn from_reply(reply: Reply) -> Answer {
    match reply {
        Reply::Json(v) => Answer::json(200, &v),
        Reply::Text(t) => Answer {
            status: 200,
            content_type: PROMETHEUS,
            body: t.into_bytes(),
            extra: Vec::new(),
        },
        Reply::NotFound(m) => Answer::error(404, m),
        Reply::Invalid(m) => Answer::error(400, m),
    }
}

/// Routes the admin serves without a gateway command.
fn local(shared: &Shared, route: &Route, body: Option<&Value>) -> Answer {
    match route {
        Route::Asset(a) => Answer {
            status: 200,
            content_type: a.content_type,
            body: a.body.as_bytes().to_vec(),
            extra: Vec::new(),
        },
        Route::Events => Answer::json(200, &json!({ "events": shared.events.snapshot() })),
        Route::LoadTest => load_test(shared, body),
        Route::DemoCrash(name) => demo_crash(shared, name, true),
        Route::DemoCrashState(name) => demo_crash(shared, name, false),
        Route::DemoStates => demo_states(shared),
        _ => Answer::error(500, "internal: route has no local handler"),
    }
}

fn load_test(shared: &Shared, body: Option<&Value>) -> Answer {
    let plan = match Plan::from_json(body) {
        Ok(p) => p,
        Err(msg) => return Answer::error(400, msg),
    };
    let Ok(_guard) = shared.loadtest.try_lock() else {
        return Answer::error(409, "a load test is already running");
    };
    let summary = loadtest::run(&plan, shared.gateway_addr, &shared.stop);
    shared.events.push(
        "loadtest",
        format!(
            "load test {} {} x{}: {} ok, {} limited, {} unavailable, {} errors, p50 {} ms",
            summary.mode,
            plan.path,
            summary.sent,
            summary.ok,
            summary.limited,
            summary.unavailable,
            summary.errors,
            summary.latency_ms.p50
        ),
    );
    match serde_json::to_value(&summary) {
        Ok(v) => Answer::json(200, &v),
        Err(e) => Answer::error(500, format!("internal: {e}")),
    }
}

/// Every backend's name and address, from the gateway's own health report,
/// so the admin never needs its own copy of the backend table.
fn backend_addrs(shared: &Shared) -> Result<Vec<(String, Option<SocketAddr>)>, Answer> {
    let health = match ask(shared, Command::Health) {
        Ok(Reply::Json(v)) => v,
        Ok(other) => return Err(from_reply(other)),
        Err(a) => return Err(a),
    };
    let list = health["backends"].as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .filter_map(|b| {
            let name = b["name"].as_str()?.to_string();
            let addr = b["address"]
                .as_str()
                .and_then(|a| a.to_socket_addrs().ok()?.next());
            Some((name, addr))
        })
        .collect())
}

/// Flips (`toggle`) or reads a demo backend's crash mode through its
/// `/admin/crash`, and answers `{"server": .., "crashed": bool}`.
fn demo_crash(shared: &Shared, name: &str, toggle: bool) -> Answer {
    let backends = match backend_addrs(shared) {
        Ok(b) => b,
        Err(a) => return a,
    };
    let Some((_, addr)) = backends.iter().find(|(n, _)| n == name) else {
        return Answer::error(404, format!("unknown backend '{name}'"));
    };
    let Some(addr) = *addr else {
        return Answer::error(502, format!("cannot resolve the address of '{name}'"));
    };
    let method = if toggle { "POST" } else { "GET" };
    let resp = match one_shot(
        addr,
        method,
        "/admin/crash",
        &[DEMO_ADMIN],
        b"",
        DEMO_TIMEOUTS,
    ) {
        Ok(r) => r,
        Err(e) => {
            return Answer::error(502, format!("backend {name} at {addr} did not answer: {e}"))
        }
    };
    if !(200..300).contains(&resp.status) {
        return Answer::error(
            502,
            format!(
                "backend {name} answered {} to {method} /admin/crash (not a demo backend?)",
                resp.status
            ),
        );
    }
    let answer: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| json!({ "response": String::from_utf8_lossy(&resp.body) }));
    if toggle {
        let state = match answer.get("crashed").and_then(Value::as_bool) {
            Some(true) => "crashed",
            Some(false) => "recovered",
            None => "toggled crash mode of",
        };
        shared
            .events
            .push("crash", format!("{state} demo backend {name}"));
    }
    Answer::json(200, &answer)
}

/// `GET /gateway/demo`: the crash flag of every backend, asked in parallel
/// with short timeouts; `null` for a backend that is not a demo backend (or
/// does not answer), so the dashboard can hide or grey its Crash button.
fn demo_states(shared: &Shared) -> Answer {
    let backends = match backend_addrs(shared) {
        Ok(b) => b,
        Err(a) => return a,
    };
    let quick = Timeouts {
        connect: Duration::from_millis(300),
        io: Duration::from_millis(800),
    };
    let states: Vec<Value> = thread::scope(|s| {
        let jobs: Vec<_> = backends
            .iter()
            .map(|(name, addr)| {
                let h = addr.map(|a| {
                    s.spawn(move || {
                        let r = one_shot(a, "GET", "/admin/crash", &[], b"", quick).ok()?;
                        if r.status != 200 {
                            return None;
                        }
                        serde_json::from_slice::<Value>(&r.body).ok()?["crashed"].as_bool()
                    })
                });
                (name, h)
            })
            .collect();
        jobs.into_iter()
            .map(|(name, h)| {
                let crashed = h.and_then(|h| h.join().ok().flatten());
                json!({ "name": name, "crashed": crashed })
            })
            .collect()
    });
    Answer::json(200, &json!({ "backends": states }))
}
