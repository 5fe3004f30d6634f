//! The `session` fuzz target's logic, shared with the corpus replay test
//! (`tests/session_corpus.rs`), which includes this file with `#[path]` so a
//! seed and a fuzz run test exactly the same thing. Never depends on
//! libFuzzer (stable `cargo test`).
//!
//! An input is one config byte, then events, each an opcode byte and its
//! arguments, fed to one session in the scripted world
//! (`api_gateway::conn::sim`): client bytes arrive (a request shape from a
//! small dictionary, or raw bytes), the client closes or resets, the
//! backend sends (a response shape: plain, chunked, 1xx, 101, until-close,
//! partial, garbage; or raw bytes), closes or resets, a connect is
//! scripted (accepted, pending, refused, failing at once) or completes, a
//! peer's write window opens by a byte budget or shuts, time advances or
//! the session's timer fires, a pooled connection appears, the worker
//! drains.
//!
//! Checked: no panic; after every event, `World::check` (in-flight leases
//! and the request gauge match the exchange, the phase and its deadline
//! agree, a closed session holds nothing); once the session is run to its
//! end, nothing in flight and no breaker permit stuck; and the framing
//! check: every request a backend connection received is, in order, a
//! request the client sent, with the same method, the same framing and the
//! same body bytes (a prefix if cut short), with nothing after the last
//! one but the start of a head; every response the client received parses
//! as a response, framed as the gateway declared.

use api_gateway::algo::Nanos;
use api_gateway::conn::sim::{self, ConnectPlan, Framing, Message, Rest, World};
use api_gateway::conn::Phase;

/// Request shapes the client may send.
const REQUESTS: [&[u8]; 16] = [
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012",
    b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
    b"GET /x HTTP/1.1\r\nHo",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n",
    b"OPTIONS /a HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
    b"DELETE /a HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\n\r\n",
];

/// Response shapes the backend may send.
const RESPONSES: [&[u8]; 16] = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil-close",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Le",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012",
    b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
    b"XYZ\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nold",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
];

/// What a run did, for the replay test's assertions.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Events applied.
    pub events: usize,
    /// Requests the backends received (complete or not).
    pub forwarded: usize,
    /// Final responses the client received.
    pub responses: usize,
    /// The phase names the session went through after each event.
    pub phases: Vec<&'static str>,
}

/// The config byte: which features the world runs with.
fn config(b: u8) -> api_gateway::Config {
    let mut c = sim::config(if b & 0x10 != 0 { 2 } else { 1 });
    c.proxy_protocol = b & 0x01 != 0;
    if b & 0x02 != 0 {
        sim::shape(&mut c, 3, 2.0);
    }
    if b & 0x04 != 0 {
        use api_gateway::pipeline::Stage;
        c.pipeline = vec![Stage::Logger, Stage::Cors, Stage::RateLimit, Stage::Proxy];
    }
    if b & 0x08 != 0 {
        c.limits.min_body_bytes_per_sec = 1024;
        c.tuning.body_rate_window_ms = 1000;
    }
    if b & 0x20 != 0 {
        c.circuit_breaker.failure_threshold = 1;
        c.circuit_breaker.open_ms = 500;
    }
    if b & 0x40 != 0 {
        c.limits.max_idle_per_backend = 1;
    }
    if b & 0x80 != 0 {
        use api_gateway::config::{ApiKeyConfig, ConsumerConfig, RouteAuthConfig, RouteConfig};
        // `/e` needs an API key (`X-API-Key: k-fuzz`, in the dictionary):
        // refusals come before any backend work, even with a body pending.
        let mut authed = RouteConfig::prefix(2, "/e");
        authed.auth = Some(RouteAuthConfig {
            api_key: Some(ApiKeyConfig::Header("X-API-Key".into())),
            jwt: None,
            allow: None,
        });
        c.routes = vec![
            RouteConfig::prefix(0, "/a"),
            RouteConfig::prefix(1, "/p"),
            authed,
        ];
        c.consumers = vec![ConsumerConfig {
            name: "fuzz".into(),
            key_digests: vec![api_gateway::auth::KeyDigest::of(b"k-fuzz")],
            rate_limit: None,
        }];
        c.place_auth_stage();
    }
    c
}

/// A byte as a window budget: 0 stops the peer reading, 255 reads all.
fn window(b: u8) -> usize {
    match b {
        0 => 0,
        255 => usize::MAX,
        n => usize::from(n % 64) + 1,
    }
}

/// The next byte (0 once the input is used up).
fn take(rest: &mut &[u8]) -> u8 {
    let (&b, r) = rest.split_first().unwrap_or((&0, &[]));
    *rest = r;
    b
}

/// Runs `input` and checks everything; panics on a broken invariant.
pub fn run(input: &[u8]) -> Summary {
    let Some((&cfg, mut rest)) = input.split_first() else {
        return Summary::default();
    };
    let mut w = World::new(config(cfg));
    let mut sum = Summary::default();
    while !rest.is_empty() && sum.events < 256 {
        let op = take(&mut rest);
        match op % 16 {
            0 => w.client_sends(REQUESTS[usize::from(take(&mut rest) % 16)]),
            1 => {
                let n = usize::from(take(&mut rest) % 64).min(rest.len());
                let (bytes, r) = rest.split_at(n);
                rest = r;
                w.client_sends(bytes);
            }
            2 => w.client_fin(),
            3 => w.client_reset(),
            4 => w.backend_sends(RESPONSES[usize::from(take(&mut rest) % 16)]),
            5 => {
                let n = usize::from(take(&mut rest) % 64).min(rest.len());
                let (bytes, r) = rest.split_at(n);
                rest = r;
                w.backend_sends(bytes);
            }
            6 => w.backend_fin(),
            7 => w.backend_reset(),
            8 => w.connects.push_back(match take(&mut rest) % 4 {
                0 => ConnectPlan::Accept,
                1 => ConnectPlan::Pending,
                2 => ConnectPlan::Refuse,
                _ => ConnectPlan::FailAtOnce,
            }),
            9 => w.connect_done(take(&mut rest) & 1 == 0),
            10 => w.client_window(window(take(&mut rest))),
            11 => w.backend_window(window(take(&mut rest))),
            12 => w.advance_by(Nanos::from_millis(u64::from(take(&mut rest)) * 8)),
            13 => fire(&mut w),
            14 => {
                let backends = w.snap.backends.len();
                let b = usize::from(take(&mut rest)) % backends;
                if w.idle_count() < 4 {
                    let _ = w.pool_idle(b);
                }
            }
            _ => w.begin_shutdown(),
        }
        sum.events += 1;
        sum.phases.push(w.session.phase().name());
    }
    // Run the session to its end: its timers fire until it closes (every
    // timed phase ends in a close or moves on), the peers stay as they are.
    for _ in 0..16 {
        if w.session.is_closed() {
            break;
        }
        fire(&mut w);
    }
    if !w.session.is_closed() {
        w.abort();
    }
    w.check_quiet();
    assert_eq!(w.inflight(), 0, "in-flight count left after the close");
    check_framing(&w, &mut sum);
    sum
}

/// The session's next timer fires (a parked request's wake-up first).
fn fire(w: &mut World) {
    let at = match (w.session.phase(), w.parked_until) {
        (Phase::Parked { .. }, Some(until)) => until,
        _ => w.session.deadline(),
    };
    if at != Nanos::ZERO {
        w.advance_to(at);
    }
}

/// Skips a PROXY protocol header (v1 line or v2 block) at the front.
fn skip_preface(data: &[u8]) -> &[u8] {
    const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    if data.starts_with(b"PROXY ") {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(data.len(), |p| p + 2);
        return &data[end..];
    }
    if data.starts_with(V2) && data.len() >= 16 {
        let len = usize::from(u16::from_be_bytes([data[14], data[15]]));
        return &data[(16 + len).min(data.len())..];
    }
    data
}

fn same_request(client: &Message, backend: &Message) -> bool {
    client.start == backend.start
        && client.framing == backend.framing
        && if backend.complete {
            client.complete && client.body == backend.body
        } else {
            client.body.starts_with(&backend.body)
        }
}

/// Every request a backend received matches, in order, one the client
/// sent (same method, framing, body); a replay repeats the last one once,
/// as the first request of a fresh connection. Requests are taken per
/// attachment (in time order), so a pooled connection's later requests are
/// placed where they were sent.
fn check_framing(w: &World, sum: &mut Summary) {
    let client_data = if w.snap.config.proxy_protocol {
        skip_preface(&w.client.sent)
    } else {
        &w.client.sent[..]
    };
    let (sent, _) = sim::requests(client_data);
    let mut next = 0usize;
    let mut answers = Vec::new();
    for (k, a) in w.attachments.iter().enumerate() {
        let (u, from) = (a.up, a.received_at);
        let remote = &w.ups[u].remote;
        let received = &remote.received;
        let later = w.attachments[k + 1..].iter().find(|b| b.up == u);
        let mut to = later.map_or(received.len(), |b| b.received_at);
        if let Some((tu, at)) = w.tunnel_at {
            if tu == u && at >= from && at <= to {
                to = at;
            }
        }
        let data = &received[from..to];
        let (got, rest) = sim::requests(data);
        // (An invalid chunked body is the client's; the gateway may have
        // forwarded its valid start before seeing the error, which the
        // backend sees as a cut-short message, never as garbage.)
        assert_ne!(
            rest,
            Rest::Garbage,
            "backend connection {u} received bytes that are no request: {:?}",
            String::from_utf8_lossy(data)
        );
        if later.is_some() {
            assert!(
                rest == Rest::Empty && got.iter().all(|m| m.complete),
                "backend connection {u} was reused after an unfinished request: {:?}",
                String::from_utf8_lossy(data)
            );
        }
        for (i, m) in got.iter().enumerate() {
            sum.forwarded += 1;
            if i == 0 && next > 0 && same_request(&sent[next - 1], m) {
                // A replay of the last request on a fresh connection.
                continue;
            }
            let Some(j) = sent[next..].iter().position(|c| same_request(c, m)) else {
                panic!(
                    "backend connection {u} got a request the client never sent as such: {m:?}\nclient sent: {sent:?}"
                );
            };
            next += j + 1;
        }
        // What the backend answered during this attachment.
        let heads: Vec<bool> = got.iter().map(|m| m.start == b"HEAD").collect();
        let sent_to = later.map_or(remote.sent.len(), |b| b.sent_at);
        answers.extend(sim::responses(&remote.sent[a.sent_at..sent_to], &heads).0);
    }
    // The client side: every response parses, framed as declared.
    let heads: Vec<bool> = sent.iter().map(|m| m.start == b"HEAD").collect();
    let (got, rest) = sim::responses(&w.client.received, &heads);
    assert!(
        rest != Rest::Garbage,
        "the client received bytes that are no response: {:?}",
        String::from_utf8_lossy(&w.client.received)
    );
    sum.responses = got.iter().filter(|m| m.status >= 200).count();
    // Every forwarded response is, in order, one a backend sent: same
    // status and framing, its body a prefix of the backend's (the whole of
    // it when the client got it all).
    // (The answer to a HEAD is compared by status only: a backend may
    // answer a request it has not read yet, and then its own framing of
    // that answer is not known here.)
    let mut from = 0usize;
    let mut finals = 0usize;
    for m in &got {
        let to_head = heads.get(finals).copied().unwrap_or(false);
        if m.status >= 200 {
            finals += 1;
        }
        if !m.forwarded {
            continue;
        }
        let same = |b: &Message| {
            b.status == m.status && to_head
                || b.status == m.status
                    && b.framing == m.framing
                    && if m.complete {
                        b.complete && b.body == m.body
                    } else {
                        b.body.starts_with(&m.body) || m.body.starts_with(&b.body)
                    }
        };
        let Some(j) = answers[from..].iter().position(same) else {
            panic!(
                "the client got a response no backend sent as such: {m:?}\nbackends sent: {answers:?}"
            );
        };
        from += j + 1;
    }
    if got
        .iter()
        .any(|m| m.framing == Framing::UntilClose && m.status >= 200 && m.status != 101)
    {
        // A response read until close must be the last.
        let last = got.last().map(|m| m.framing);
        assert_eq!(
            last,
            Some(Framing::UntilClose),
            "until-close response not last"
        );
    }
}
