//! Unit tests of the session's transitions, driven by the scripted world of
//! `sim.rs`: no sockets, a fake clock, scripted peers. Each test asserts
//! the bytes on the wire at both ends, the phases, the statuses and the
//! permit/lease accounting; every event also runs `World::check`.

use crate::algo::breaker::CircuitState;
use crate::algo::Nanos;
use crate::config::Config;

use super::phase::Phase;
use super::session::{Peer, Step};
use super::sim::{self, requests, statuses, ConnectPlan, Framing, Life, Rest, World};

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_B: &[u8] = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const CREATED: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew";

fn world() -> World {
    World::new(sim::config(1))
}

fn world_with(f: impl FnOnce(&mut Config)) -> World {
    let mut c = sim::config(1);
    f(&mut c);
    World::new(c)
}

fn phase(w: &World) -> &'static str {
    w.session.phase().name()
}

fn ms(n: u64) -> Nanos {
    Nanos::from_millis(n)
}

/// What the attached (or last) backend connection received, as requests.
fn backend_requests(w: &World, u: usize) -> Vec<sim::Message> {
    let (msgs, rest) = requests(&w.ups[u].remote.received);
    assert_eq!(
        rest,
        Rest::Empty,
        "stray bytes sent to backend connection {u}"
    );
    msgs
}

fn failures(w: &World) -> u32 {
    w.snap.backends.get(0).breaker.failures()
}

/// Ends a scenario: nothing leaked.
fn quiet(w: &World) {
    w.check_quiet();
    if w.session.is_closed() || w.session.is_idle() {
        assert_eq!(w.inflight(), 0, "in-flight count left behind");
    }
}

/// A world with one complete keep-alive exchange behind it (phase idle).
fn after_one_exchange() -> World {
    let mut w = world();
    w.client_sends(GET_A);
    w.backend_sends(OK);
    assert_eq!(phase(&w), "idle");
    assert_eq!(statuses(&w.client.received), [200]);
    w
}

// ------------------------------------------------------------- overlap

/// The backend answers (head and part of the body) before the request body
/// is through; the rest of the request body still goes to the backend and
/// the response completes.
#[test]
fn response_overlaps_request_body() {
    let mut w = world();
    w.client_sends(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    assert_eq!(phase(&w), "sending-request");
    assert_eq!(w.inflight(), 1);
    w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
    // The head and the first body bytes reached the client while the
    // request is still being sent.
    assert!(w.client.received.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(w.client.received.ends_with(b"\r\n\r\nab"));
    assert_eq!(phase(&w), "sending-request");
    w.client_sends(b"456789");
    let got = backend_requests(&w, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].framing, Framing::Length(10));
    assert_eq!(got[0].body, b"0123456789");
    assert!(got[0].complete);
    assert_eq!(phase(&w), "streaming-response");
    w.backend_sends(b"cd");
    assert!(w.client.received.ends_with(b"abcd"));
    // The head went out before the request was through, so it already
    // said `Connection: close` (the gateway could not know the body would
    // complete); the backend connection saw a whole exchange and is pooled.
    let text = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    assert_eq!(phase(&w), "lingering");
    assert!(w.client.got_fin());
    assert_eq!(
        w.ups[0].life,
        Life::Idle,
        "a whole exchange pools the backend connection"
    );
    assert_eq!(w.inflight(), 0);
    quiet(&w);
}

/// The backend sends its whole response before the request body is
/// through: the exchange ends without the rest of the body, the backend
/// connection is closed (it holds part of a request), and the client
/// connection is closed after the response (its stream is mid-body).
#[test]
fn complete_response_before_request_body_closes_both() {
    let mut w = world();
    w.client_sends(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    w.backend_sends(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(statuses(&w.client.received), [413]);
    let head = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(w.ups[0].life, Life::Closed);
    assert_eq!(phase(&w), "lingering");
    assert!(w.client.got_fin());
    assert!(w.steps.contains(&Step::Release { reusable: false }));
    quiet(&w);
}

// ----------------------------------------------------------- pipelining

/// Two requests in one read: forwarded one at a time, each with its own
/// framing (the second never leaks into the first's body), answered in
/// order, on the same pooled backend connection.
#[test]
fn pipelined_requests_are_forwarded_one_by_one() {
    let mut w = world();
    let mut both = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_vec();
    both.extend_from_slice(GET_B);
    w.client_sends(&both);
    // Only the first request is with the backend.
    let got = backend_requests(&w, 0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].start, b"POST");
    assert_eq!(got[0].framing, Framing::Length(3));
    assert_eq!(got[0].body, b"abc");
    assert_eq!(phase(&w), "awaiting-response");
    w.backend_sends(CREATED);
    // The second went out on the same (pooled, reused) connection.
    assert_eq!(w.ups.len(), 1);
    let got = backend_requests(&w, 0);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].start, b"GET");
    assert_eq!(got[1].framing, Framing::Length(0));
    assert_eq!(phase(&w), "awaiting-response");
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [201, 200]);
    assert!(w.client.received.ends_with(b"ok"));
    assert_eq!(phase(&w), "idle");
    let connects: Vec<_> = w
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Connect { .. }))
        .collect();
    assert_eq!(connects.len(), 2);
    quiet(&w);
}

/// Writes that the peers take a few bytes at a time change nothing: the
/// same bytes arrive at both ends.
#[test]
fn partial_writes_deliver_the_same_bytes() {
    let mut w = world();
    w.client_window(0);
    w.client.window = 7;
    w.connects.push_back(ConnectPlan::Accept);
    w.client_sends(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    let r = &mut w.ups[0].remote;
    assert!(!r.received.is_empty());
    w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    for _ in 0..100 {
        w.client_window(7);
    }
    assert_eq!(statuses(&w.client.received), [200]);
    assert!(w.client.received.ends_with(b"hello"));
    assert_eq!(backend_requests(&w, 0)[0].body, b"abc");
    assert_eq!(phase(&w), "idle");
    quiet(&w);
}

// -------------------------------------------------------- parked/resumed

/// The leaky bucket delays the second request: it waits, untimed and
/// holding no backend, until the clock reaches `until`, then is forwarded.
#[test]
fn parked_request_resumes_when_the_clock_passes_until() {
    let mut w = world_with(|c| {
        c.rate_limit.spec = api_gateway_admin::LimitSpec::LeakyBucket {
            capacity: 5,
            leak_per_sec: 1.0,
        };
    });
    w.client_sends(GET_A);
    w.backend_sends(OK);
    let t0 = w.now;
    w.client_sends(GET_B);
    assert_eq!(phase(&w), "parked");
    let until = match *w.session.phase() {
        Phase::Parked { until, .. } => until,
        _ => unreachable!(),
    };
    assert_eq!(until, t0.saturating_add(ms(1000)));
    assert_eq!(w.steps.last(), Some(&Step::Park { until }));
    assert_eq!(w.session.deadline(), Nanos::ZERO);
    assert_eq!(w.inflight(), 0, "a parked request holds no backend");
    assert_eq!(backend_requests(&w, 0).len(), 1);
    w.advance_to(until.saturating_sub(Nanos(1)));
    assert_eq!(phase(&w), "parked");
    assert_eq!(backend_requests(&w, 0).len(), 1);
    w.advance_to(until);
    assert_eq!(phase(&w), "awaiting-response");
    let got = backend_requests(&w, 0);
    assert_eq!(got.len(), 2);
    assert_eq!(w.inflight(), 1);
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200, 200]);
    let text = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert!(text.contains("ratelimit"), "rate-limit headers: {text}");
    quiet(&w);
}

// ------------------------------------------------------- stale -> replay

/// A pooled connection the backend closed without answering: the request
/// (idempotent, no body) is replayed once on a fresh connection.
#[test]
fn stale_pooled_connection_is_replayed_once() {
    let mut w = world();
    let stale = w.pool_idle(0).unwrap();
    w.client_sends(GET_A);
    assert_eq!(w.attached, Some(stale));
    assert_eq!(backend_requests(&w, stale).len(), 1);
    w.backend_fin();
    assert_eq!(w.ups[stale].life, Life::Closed);
    let fresh = w.attached.expect("a fresh connection");
    assert_ne!(fresh, stale);
    assert!(w.steps.contains(&Step::Connect {
        pool: crate::upstream::PoolId::DEFAULT,
        backend: 0,
        fresh: true
    }));
    assert_eq!(w.ups[stale].remote.received, w.ups[fresh].remote.received);
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    assert_eq!(
        failures(&w),
        0,
        "a stale connection is not a backend failure"
    );
    quiet(&w);
}

/// The replay itself meets a closed connection: 502, not a second replay.
#[test]
fn a_replay_is_not_replayed_again() {
    let mut w = world();
    w.pool_idle(0).unwrap();
    w.client_sends(GET_A);
    w.backend_fin();
    // The fresh connection closes too; it was not reused, so no retry.
    w.backend_fin();
    assert_eq!(statuses(&w.client.received), [502]);
    assert_eq!(w.ups.len(), 2);
    quiet(&w);
}

/// A non-idempotent request, or one with a body, is never replayed: 502.
#[test]
fn stale_connection_with_post_or_body_gets_502() {
    for (req, closes) in [
        (&b"POST /a HTTP/1.1\r\nHost: x\r\n\r\n"[..], false),
        (
            &b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"[..],
            true,
        ),
    ] {
        let mut w = world();
        w.pool_idle(0).unwrap();
        w.client_sends(req);
        assert_eq!(backend_requests(&w, 0).len(), 1);
        w.backend_fin();
        assert_eq!(
            statuses(&w.client.received),
            [502],
            "{:?}",
            String::from_utf8_lossy(req)
        );
        assert_eq!(w.ups.len(), 1, "no second connection");
        assert_eq!(failures(&w), 1);
        assert_eq!(phase(&w), if closes { "lingering" } else { "idle" });
        quiet(&w);
    }
}

/// A pooled connection seen closed before it is taken is skipped at
/// checkout (the worker probes it), and a new connection is made.
#[test]
fn pooled_connection_closed_while_idle_is_skipped() {
    let mut w = world();
    let u = w.pool_idle(0).unwrap();
    w.backend_fin();
    assert_eq!(w.ups[u].life, Life::Closed);
    w.client_sends(GET_A);
    assert_eq!(w.attached, Some(1));
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    quiet(&w);
}

// -------------------------------------------------------------- timeouts

/// Runs the clock to just before, then to, the session's deadline.
fn expire(w: &mut World) {
    let d = w.session.deadline();
    assert_ne!(d, Nanos::ZERO, "no deadline in {}", phase(w));
    let name = phase(w);
    w.advance_to(d.saturating_sub(Nanos(1)));
    assert_eq!(phase(w), name, "timed out early");
    w.advance_to(d);
}

#[test]
fn timeout_in_preface_closes_silently() {
    let mut w = world_with(|c| c.proxy_protocol = true);
    assert_eq!(phase(&w), "preface");
    w.client_sends(b"PROXY TCP4 1.2.3.4");
    assert_eq!(phase(&w), "preface");
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    assert_eq!(w.now, ms(1000).saturating_add(w.timeouts.header));
    quiet(&w);
}

#[test]
fn timeout_when_idle_closes_silently() {
    let mut w = after_one_exchange();
    let before = w.client.received.len();
    assert_eq!(w.session.deadline(), w.now.saturating_add(w.timeouts.idle));
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert_eq!(w.client.received.len(), before);
    assert_eq!(w.steps.last(), Some(&Step::Close));
    quiet(&w);
}

#[test]
fn timeout_of_a_silent_new_connection_closes_silently() {
    let mut w = world();
    assert_eq!(phase(&w), "reading-head");
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    quiet(&w);
}

#[test]
fn timeout_reading_a_head_answers_408_and_closes() {
    let mut w = after_one_exchange();
    w.advance_by(ms(10));
    w.client_sends(b"GET /slow HTTP/1.1\r\nHost");
    assert_eq!(phase(&w), "reading-head");
    // The header timer runs from the first byte and is not pushed.
    let d = w.now.saturating_add(w.timeouts.header);
    assert_eq!(w.session.deadline(), d);
    w.advance_by(ms(100));
    w.client_sends(b": x\r\n");
    assert_eq!(w.session.deadline(), d);
    expire(&mut w);
    assert_eq!(statuses(&w.client.received), [200, 408]);
    assert_eq!(phase(&w), "lingering");
    assert!(w.client.got_fin());
    quiet(&w);
}

#[test]
fn timeout_connecting_answers_504_and_counts_a_failure() {
    let mut w = world();
    w.connects.push_back(ConnectPlan::Pending);
    w.client_sends(GET_A);
    assert_eq!(phase(&w), "connecting");
    assert_eq!(
        w.session.deadline(),
        w.now.saturating_add(w.timeouts.connect)
    );
    assert_eq!(w.inflight(), 1);
    expire(&mut w);
    assert_eq!(statuses(&w.client.received), [504]);
    assert_eq!(failures(&w), 1);
    assert_eq!(w.ups[0].life, Life::Closed);
    assert_eq!(phase(&w), "idle");
    quiet(&w);
}

/// Everything the client sent is with the backend and the rest of its body
/// never comes: the client is slow, not the backend (408, no failure).
#[test]
fn timeout_sending_a_stalled_body_answers_408() {
    let mut w = world();
    w.client_sends(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    assert_eq!(phase(&w), "sending-request");
    expire(&mut w);
    assert_eq!(statuses(&w.client.received), [408]);
    assert_eq!(failures(&w), 0);
    assert_eq!(w.ups[0].life, Life::Closed);
    assert_eq!(phase(&w), "lingering");
    quiet(&w);
}

/// The backend does not read the request: 504, counted against it.
#[test]
fn timeout_sending_to_a_backend_that_does_not_read_answers_504() {
    let mut w = world();
    w.connects.push_back(ConnectPlan::Pending);
    w.client_sends(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    w.ups[0].remote.window = 0;
    w.connect_done(true);
    assert_eq!(phase(&w), "sending-request");
    assert!(w.ups[0].remote.received.is_empty());
    expire(&mut w);
    assert_eq!(statuses(&w.client.received), [504]);
    assert_eq!(failures(&w), 1);
    quiet(&w);
}

#[test]
fn timeout_awaiting_the_response_head_answers_504() {
    let mut w = world();
    w.client_sends(GET_A);
    assert_eq!(phase(&w), "awaiting-response");
    assert_eq!(
        w.session.deadline(),
        w.now.saturating_add(w.timeouts.response)
    );
    w.advance_by(ms(10));
    // Progress (an interim head) does not push the head deadline.
    let d = w.session.deadline();
    w.backend_sends(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(w.session.deadline(), d);
    expire(&mut w);
    assert_eq!(statuses(&w.client.received), [100, 504]);
    assert_eq!(failures(&w), 1);
    assert_eq!(phase(&w), "idle");
    quiet(&w);
}

/// A backend silent mid-body: the connection is cut (the head is out) and
/// the backend is charged; a client that does not read is not the
/// backend's fault.
#[test]
fn timeout_streaming_the_response_cuts_the_connection() {
    for client_reads in [true, false] {
        let mut w = world();
        if !client_reads {
            w.client.window = 40;
        }
        w.client_sends(GET_A);
        w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01");
        assert_eq!(phase(&w), "streaming-response");
        let sent = w.client.received.len();
        // Streaming progress pushes the inactivity timer.
        w.advance_by(ms(1000));
        let d = w.session.deadline();
        w.backend_sends(b"23");
        assert_eq!(
            w.session.deadline(),
            d.saturating_add(ms(1000)),
            "progress pushes the timer"
        );
        expire(&mut w);
        assert_eq!(phase(&w), "closed");
        assert!(!w.client.got_fin(), "cut, not a graceful close");
        assert!(w.client.received.len() >= sent.min(40));
        assert_eq!(
            failures(&w),
            u32::from(client_reads),
            "client reads: {client_reads}"
        );
        quiet(&w);
    }
}

fn tunnel() -> World {
    let mut w = world();
    w.client_sends(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    w.backend_sends(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(phase(&w), "tunnelling");
    w.client_sends(b"ping");
    w.backend_sends(b"pong");
    assert!(w.ups[0].remote.received.ends_with(b"\r\n\r\nping"));
    assert!(w.client.received.ends_with(b"\r\n\r\npong"));
    w
}

#[test]
fn timeout_in_a_tunnel_closes() {
    let mut w = tunnel();
    assert_eq!(w.session.deadline(), w.now.saturating_add(w.timeouts.idle));
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert_eq!(w.ups[0].life, Life::Closed);
    quiet(&w);
}

#[test]
fn timeout_replying_to_a_client_that_does_not_read_closes() {
    let mut w = world();
    w.client.window = 0;
    w.client_sends(b"BLAH\r\n\r\n");
    assert_eq!(phase(&w), "replying");
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    quiet(&w);
}

/// `Closing` is entered only with everything flushed (the reply and the
/// response both wait for their bytes first), so it is left at once for
/// `Lingering`; its timer is tested by entering it with bytes queued.
#[test]
fn timeout_while_closing_closes() {
    let mut w = world();
    w.client.window = 0;
    w.client_sends(b"BLAH\r\n\r\n");
    assert_eq!(phase(&w), "replying");
    let at = w.now.saturating_add(w.timeouts.idle);
    w.session.enter(Phase::Closing, at);
    w.drive();
    assert_eq!(phase(&w), "closing");
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    assert!(!w.client.got_fin());
    quiet(&w);
}

#[test]
fn timeout_while_lingering_closes() {
    let mut w = world();
    w.client_sends(b"BLAH\r\n\r\n");
    assert_eq!(statuses(&w.client.received), [400]);
    assert_eq!(phase(&w), "lingering");
    assert!(w.client.got_fin());
    assert_eq!(
        w.session.deadline(),
        w.now.saturating_add(w.timeouts.linger)
    );
    // What the client still sends is read and discarded.
    w.client_sends(b"more junk");
    assert_eq!(phase(&w), "lingering");
    expire(&mut w);
    assert_eq!(phase(&w), "closed");
    quiet(&w);
}

/// A parked request has no deadline: no timeout fires however long it
/// waits (it wakes on the parking heap).
#[test]
fn parked_never_times_out() {
    let mut w = world_with(|c| {
        c.rate_limit.spec = api_gateway_admin::LimitSpec::LeakyBucket {
            capacity: 2,
            leak_per_sec: 0.005,
        };
    });
    w.client_sends(GET_A);
    w.backend_sends(OK);
    w.client_sends(GET_B);
    assert_eq!(phase(&w), "parked");
    assert_eq!(w.session.deadline(), Nanos::ZERO);
    assert!(!w.session.is_due(w.now.saturating_add(ms(150_000))));
    let until = w.parked_until.unwrap();
    let longest = [
        w.timeouts.header,
        w.timeouts.idle,
        w.timeouts.response,
        w.timeouts.linger,
    ]
    .into_iter()
    .max()
    .unwrap();
    assert!(until > w.now.saturating_add(longest));
    w.advance_by(longest.saturating_add(ms(1)));
    assert_eq!(phase(&w), "parked");
    w.advance_to(until);
    assert_eq!(phase(&w), "awaiting-response");
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200, 200]);
    quiet(&w);
}

// ------------------------------------------------------------ client EOF

#[test]
fn eof_in_preface_closes_silently() {
    let mut w = world_with(|c| c.proxy_protocol = true);
    w.client_sends(b"PROXY TCP4 1.2.3.4 ");
    w.client_fin();
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    quiet(&w);
}

#[test]
fn eof_when_idle_or_before_any_byte_closes_silently() {
    let mut w = after_one_exchange();
    let n = w.client.received.len();
    w.client_fin();
    assert_eq!(phase(&w), "closed");
    assert_eq!(w.client.received.len(), n);
    quiet(&w);

    let mut w = world();
    w.client_fin();
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    quiet(&w);
}

/// A client gone half-way through a head gets no 400 (as nginx).
#[test]
fn eof_reading_a_head_closes_without_an_answer() {
    let mut w = world();
    w.client_sends(b"GET /a HTTP/1.1\r\nHo");
    assert_eq!(phase(&w), "reading-head");
    w.client_fin();
    assert_eq!(phase(&w), "closed");
    assert!(w.client.received.is_empty());
    assert_eq!(
        w.shared
            .metrics
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    quiet(&w);
}

/// A FIN after a whole request is a half-close: the request is still
/// answered, then the connection closes.
#[test]
fn eof_while_parked_still_answers() {
    let mut w = world_with(|c| {
        c.rate_limit.spec = api_gateway_admin::LimitSpec::LeakyBucket {
            capacity: 5,
            leak_per_sec: 1.0,
        };
    });
    w.client_sends(GET_A);
    w.backend_sends(OK);
    w.client_sends(GET_B);
    w.client_fin();
    assert_eq!(phase(&w), "parked");
    w.advance_to(w.parked_until.unwrap());
    assert_eq!(phase(&w), "awaiting-response");
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200, 200]);
    let text = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert_eq!(text.matches("connection: close").count(), 1, "{text}");
    // The client's FIN came first and nothing is unread: closed at once,
    // no shutdown and lingering needed.
    assert_eq!(phase(&w), "closed");
    assert_eq!(
        w.ups[0].life,
        Life::Idle,
        "the backend connection is still good"
    );
    quiet(&w);
}

#[test]
fn eof_while_connecting_with_a_whole_request_still_answers() {
    let mut w = world();
    w.connects.push_back(ConnectPlan::Pending);
    w.client_sends(GET_A);
    w.client_fin();
    assert_eq!(phase(&w), "connecting");
    w.connect_done(true);
    assert_eq!(backend_requests(&w, 0).len(), 1);
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    let text = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    assert!(matches!(phase(&w), "lingering" | "closed"));
    quiet(&w);
}

/// The client leaves in the middle of its body: the exchange ends at once,
/// the backend connection is closed, its breaker is not charged and the
/// permit goes back.
#[test]
fn eof_mid_body_closes_and_charges_nobody() {
    for connecting in [true, false] {
        let mut w = world();
        if connecting {
            w.connects.push_back(ConnectPlan::Pending);
        }
        w.client_sends(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
        w.client_fin();
        if connecting {
            assert_eq!(phase(&w), "connecting");
            w.connect_done(true);
        }
        assert_eq!(phase(&w), "closed");
        assert!(w.client.received.is_empty());
        assert_eq!(w.ups[0].life, Life::Closed);
        assert_eq!(failures(&w), 0);
        assert_eq!(w.inflight(), 0);
        quiet(&w);
    }
}

#[test]
fn eof_awaiting_or_streaming_the_response_still_delivers_it() {
    for streaming in [false, true] {
        let mut w = world();
        w.client_sends(GET_A);
        if streaming {
            w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
            assert_eq!(phase(&w), "streaming-response");
        }
        w.client_fin();
        assert_ne!(phase(&w), "closed");
        if streaming {
            w.backend_sends(b"cd");
        } else {
            w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd");
        }
        assert_eq!(statuses(&w.client.received), [200]);
        assert!(w.client.received.ends_with(b"abcd"));
        assert!(matches!(phase(&w), "lingering" | "closed"), "{}", phase(&w));
        quiet(&w);
    }
}

/// Half-closes cross a tunnel one way at a time.
#[test]
fn eof_in_a_tunnel_is_propagated() {
    let mut w = tunnel();
    w.client_fin();
    assert!(w.ups[0].remote.got_fin());
    assert_eq!(phase(&w), "tunnelling");
    w.backend_sends(b"bye");
    assert!(w.client.received.ends_with(b"pongbye"));
    w.backend_fin();
    assert!(w.client.got_fin());
    assert_eq!(phase(&w), "closed");
    assert!(w.steps.contains(&Step::Shut(Peer::Upstream)));
    assert!(w.steps.contains(&Step::Shut(Peer::Client)));
    quiet(&w);
}

/// EOF while a keep-alive reply waits for the client to read: the reply is
/// still delivered, then the connection closes.
#[test]
fn eof_while_replying_delivers_the_reply_then_closes() {
    let mut w = world_with(|c| c.routes = vec![crate::config::RouteConfig::prefix(0, "/api")]);
    w.client.window = 0;
    w.client_sends(GET_A);
    assert_eq!(phase(&w), "replying");
    w.client_fin();
    assert_eq!(phase(&w), "replying");
    w.client_window(usize::MAX);
    assert_eq!(statuses(&w.client.received), [404]);
    assert_eq!(phase(&w), "closed");
    quiet(&w);
}

#[test]
fn eof_while_closing_or_lingering_closes() {
    let mut w = world();
    w.client_sends(b"BLAH\r\n\r\n");
    assert_eq!(phase(&w), "lingering");
    w.client_fin();
    assert_eq!(phase(&w), "closed");
    quiet(&w);

    // Closing reads and discards; the FIN is acted on once lingering.
    let mut w = world();
    w.client.window = 0;
    w.client_sends(b"BLAH\r\n\r\n");
    let at = w.now.saturating_add(w.timeouts.idle);
    w.session.enter(Phase::Closing, at);
    w.client_fin();
    assert_eq!(phase(&w), "closing");
    w.client_window(usize::MAX);
    assert_eq!(statuses(&w.client.received), [400]);
    assert_eq!(phase(&w), "closed");
    quiet(&w);
}

/// A reset is not a half-close: whatever the phase, the connection ends at
/// once and nothing is charged to the backend.
#[test]
fn reset_in_any_phase_closes_at_once() {
    let setups: [fn(&mut World); 4] = [
        |w| w.client_sends(b"GET /a HTTP/1.1\r\n"),
        |w| {
            w.connects.push_back(ConnectPlan::Pending);
            w.client_sends(GET_A);
        },
        |w| w.client_sends(GET_A),
        |w| {
            w.client_sends(GET_A);
            w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
        },
    ];
    for setup in setups {
        let mut w = world();
        setup(&mut w);
        let was = phase(&w);
        w.client_reset();
        assert_eq!(phase(&w), "closed", "reset in {was}");
        assert!(w.ups.iter().all(|u| u.life == Life::Closed));
        assert_eq!(failures(&w), 0, "reset in {was}");
        quiet(&w);
    }
}

// ------------------------------------------------------------ accounting

/// A half-open probe whose client vanishes hands its permit back: the next
/// request gets the probe, and its success closes the circuit.
#[test]
fn probe_permit_is_handed_back_when_the_client_leaves() {
    let mut c = sim::config(1);
    c.circuit_breaker.failure_threshold = 1;
    c.circuit_breaker.open_ms = 1000;
    let mut w = World::new(c);
    w.connects.push_back(ConnectPlan::Refuse);
    w.client_sends(GET_A);
    assert_eq!(statuses(&w.client.received), [502]);
    let breaker = |w: &World| w.snap.backends.get(0).breaker.state(w.now);
    assert_eq!(breaker(&w), CircuitState::Open);
    w.advance_by(ms(1000));
    assert_eq!(breaker(&w), CircuitState::HalfOpen);
    w.client_sends(GET_B);
    assert!(w.session.ex.selection.as_ref().unwrap().permit.is_probe());
    w.client_reset();
    assert_eq!(w.inflight(), 0);
    quiet(&w);

    // A new client gets the probe at once, and its success closes the circuit.
    w.session = super::Session::new(
        sim::CLIENT,
        Phase::ReadingHead,
        w.now.saturating_add(w.timeouts.header),
    );
    w.client = sim::Remote::default();
    w.client_sends(GET_A);
    assert!(w.session.ex.selection.as_ref().unwrap().permit.is_probe());
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    assert_eq!(breaker(&w), CircuitState::Closed);
    quiet(&w);
}

/// Every connect outcome leaves nothing in flight and no permit out.
#[test]
fn every_connect_outcome_releases_the_selection() {
    for (plan, status) in [
        (ConnectPlan::Refuse, 502),
        (ConnectPlan::FailAtOnce, 502),
        (ConnectPlan::Accept, 200),
    ] {
        let mut w = world();
        w.connects.push_back(plan);
        w.client_sends(GET_A);
        if plan == ConnectPlan::Accept {
            w.backend_sends(OK);
        }
        assert_eq!(statuses(&w.client.received), [status], "{plan:?}");
        assert_eq!(w.inflight(), 0);
        assert_eq!(failures(&w), u32::from(status == 502));
        quiet(&w);
    }
}

/// A backend that resets mid-response: the client connection is cut and
/// the backend charged once.
#[test]
fn backend_reset_mid_response_cuts_the_client() {
    let mut w = world();
    w.client_sends(GET_A);
    w.backend_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
    w.backend_reset();
    assert_eq!(phase(&w), "closed");
    assert_eq!(failures(&w), 1);
    quiet(&w);
}

/// A response read until close ends with the backend's FIN.
#[test]
fn response_until_close_ends_with_the_backend_fin() {
    let mut w = world();
    w.client_sends(GET_A);
    w.backend_sends(b"HTTP/1.1 200 OK\r\n\r\nstream");
    assert_eq!(phase(&w), "streaming-response");
    w.backend_sends(b"ing");
    w.backend_fin();
    assert!(w.client.received.ends_with(b"streaming"));
    assert!(matches!(phase(&w), "lingering" | "closed"));
    assert_eq!(failures(&w), 0);
    quiet(&w);
}

/// Shutting down: an idle connection is closed at once; one mid-request
/// finishes its response with `Connection: close`.
#[test]
fn draining_closes_idle_and_finishes_in_flight() {
    let mut w = after_one_exchange();
    w.begin_shutdown();
    assert_eq!(phase(&w), "closed");
    quiet(&w);

    let mut w = world();
    w.client_sends(GET_A);
    w.begin_shutdown();
    w.backend_sends(OK);
    let text = String::from_utf8_lossy(&w.client.received).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    assert_eq!(w.ups[0].life, Life::Closed, "not pooled while draining");
    quiet(&w);
}

// ------------------------------------------------------------ found by fuzzing

/// A gateway-made reply must not tear a response head already partly
/// written. Found by the `session` fuzz target: an interim head (here
/// `103`) is partly written to a slow client, then the backend fails
/// (an invalid final head) and `reply()` clears `to_client` although its
/// first bytes are on the wire, so the client reads `HTTP/1.1 103` glued to
/// `HTTP/1.1 502 ...`: a corrupt stream. Now the rest of the interim head
/// goes out before the reply.
#[test]
fn reply_after_a_partly_written_interim_head_keeps_the_stream_valid() {
    let mut w = world();
    w.client.window = 0;
    w.client_sends(GET_A);
    w.backend_sends(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n");
    w.client_window(12);
    assert_eq!(w.client.received, b"HTTP/1.1 103");
    w.backend_sends(b"XYZ\r\n\r\n");
    w.client_window(usize::MAX);
    let (got, rest) = sim::responses(&w.client.received, &[]);
    assert_eq!(
        rest,
        Rest::Empty,
        "torn stream: {:?}",
        String::from_utf8_lossy(&w.client.received)
    );
    assert_eq!(got.last().map(|m| m.status), Some(502));
}

/// Bytes a backend sends after its response (in the same read, or while
/// the response is still being written to a slow client) belong to that
/// connection, which is then not reused; they are never read as the next
/// request's response. Found by the `session` fuzz target: the stray bytes
/// stayed in the response buffer and the client got them, from a closed
/// connection, as the answer to its next request (a response desync).
#[test]
fn stray_backend_bytes_never_answer_the_next_request() {
    const FORGED: &[u8] = b"HTTP/1.1 299 Forged\r\nContent-Length: 0\r\n\r\n";
    // In the same read as the end of the response.
    let mut w = world();
    w.client_sends(GET_A);
    w.backend_sends(&[OK, FORGED].concat());
    assert_eq!(statuses(&w.client.received), [200]);
    assert_eq!(w.ups[0].life, Life::Closed, "not pooled after stray bytes");
    w.client_sends(GET_B);
    w.backend_sends(CREATED);
    assert_eq!(statuses(&w.client.received), [200, 201]);
    quiet(&w);

    // While the response waits for a client that is not reading.
    let mut w = world();
    w.client.window = 0;
    w.client_sends(GET_A);
    w.backend_sends(OK);
    w.backend_sends(FORGED);
    w.client_sends(GET_B);
    w.client_window(usize::MAX);
    w.backend_sends(CREATED);
    assert_eq!(statuses(&w.client.received), [200, 201]);
    quiet(&w);
}

// ------------------------------------------------------------- auth

/// Routes with API-key auth: `/admin` only for alice, the rest open.
fn auth_world() -> World {
    let c = Config::from_json(
        r#"{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "rate_limit": {"algorithm": "token-bucket", "capacity": 1000000, "refill_per_sec": 1000000},
            "backends": [{"name": "B0", "addr": "192.0.2.1:8000"}],
            "consumers": [{"name": "alice", "api_keys": ["k-a"]}, {"name": "bob", "api_keys": ["k-b"]}],
            "routes": [{"path_prefix": "/admin", "upstream": "default",
                        "auth": {"api_key": {}, "allow": ["alice"]}},
                       {"path_prefix": "/", "upstream": "default"}]}"#,
    )
    .unwrap();
    World::new(c)
}

/// A refused request is answered by the gateway with no backend work, and
/// the keep-alive connection goes on: the next pipelined request, with
/// alice's key, is forwarded without the key and with `X-Consumer`.
#[test]
fn auth_refusals_need_no_backend_and_keep_the_connection() {
    let mut w = auth_world();
    w.client_sends(
        b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /admin HTTP/1.1\r\nHost: x\r\nX-API-Key: k-b\r\n\r\n\
          GET /admin/x HTTP/1.1\r\nHost: x\r\nX-API-Key: k-a\r\nX-Consumer: eve\r\n\r\n",
    );
    assert!(w.ups.len() <= 1, "no connect for the refused requests");
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [401, 403, 200]);
    assert_eq!(backend_requests(&w, 0).len(), 1);
    let head = String::from_utf8_lossy(&w.ups[0].remote.received).to_ascii_lowercase();
    assert!(head.starts_with("get /admin/x "), "{head}");
    assert!(head.contains("\r\nx-consumer: alice\r\n"), "{head}");
    assert!(
        !head.contains("x-api-key") && !head.contains("eve"),
        "{head}"
    );
    assert_eq!(phase(&w), "idle");
    quiet(&w);
}

// ------------------------------------------------------------- tls

/// Over TLS the session waits in `Handshaking` until the transport says the
/// handshake is done, then reads the first head with the header timer; the
/// backend is told the request came over HTTPS.
#[test]
fn tls_handshake_then_request_says_https() {
    let mut w = World::over_tls(sim::config(1));
    assert_eq!(phase(&w), "handshaking");
    w.handshake_done();
    assert_eq!(phase(&w), "reading-head");
    assert_eq!(
        w.session.deadline(),
        w.now.saturating_add(w.timeouts.header)
    );
    w.client_sends(GET_A);
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    let head = String::from_utf8_lossy(&w.ups[0].remote.received).to_ascii_lowercase();
    assert!(head.contains("\r\nx-forwarded-proto: https\r\n"), "{head}");
    quiet(&w);
}

/// A handshake that does not finish by its deadline is closed without a
/// byte written (an HTTP answer would be garbage to a TLS client).
#[test]
fn tls_handshake_deadline_closes_silently() {
    let mut c = sim::config(1);
    c.timeouts.handshake_ms = Some(300);
    let mut w = World::over_tls(c);
    let d = w.session.deadline();
    assert_eq!(d, ms(1300));
    w.advance_to(d.saturating_sub(Nanos(1)));
    assert_eq!(phase(&w), "handshaking");
    w.advance_to(d);
    assert!(w.session.is_closed());
    assert!(w.client.received.is_empty());
    quiet(&w);
}

/// A client that said `Connection: close` sends nothing more once its
/// request is read: the connection closes at once, with no shutdown and
/// no lingering (a FIN, since nothing is left unread).
#[test]
fn a_client_that_says_close_is_closed_at_once() {
    let mut w = world();
    w.client_sends(b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    w.backend_sends(OK);
    assert_eq!(statuses(&w.client.received), [200]);
    assert_eq!(phase(&w), "closed");
    assert!(
        !w.steps
            .iter()
            .any(|s| matches!(s, Step::Shut(Peer::Client))),
        "no shutdown: {:?}",
        w.steps
    );
    quiet(&w);
}

/// When the gateway decides to close (here a malformed request), the
/// client may still be sending: it shuts down and lingers as before, so
/// unread input cannot turn the close into a reset that destroys the
/// answer.
#[test]
fn a_close_the_gateway_decides_still_lingers() {
    let mut w = world();
    w.client_sends(b"BLAH\r\n\r\n");
    assert_eq!(statuses(&w.client.received), [400]);
    assert_eq!(phase(&w), "lingering");
    assert!(w.client.got_fin());
}

// ------------------------------------------------------------- resting

/// A session that rested after one connection's request serves another
/// connection's next (the worker's spares do not blank it): nothing of the
/// first request leaks into the second (peer, request id, target).
#[test]
fn a_rested_session_serves_another_connection_with_nothing_stale() {
    let mut w = after_one_exchange();
    let other: std::net::SocketAddr = "203.0.113.9:5555".parse().unwrap();
    w.hand_to(other);
    w.client_sends(GET_B);
    w.backend_sends(CREATED);
    assert_eq!(statuses(&w.client.received), [200, 201]);
    let sent = String::from_utf8_lossy(&w.ups[0].remote.received).into_owned();
    let heads: Vec<&str> = sent.split("\r\n\r\n").filter(|h| !h.is_empty()).collect();
    assert_eq!(heads.len(), 2, "{sent}");
    let field = |head: &str, name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(str::to_owned))
            .unwrap_or_default()
    };
    assert!(heads[0].starts_with("GET /a ") && heads[1].starts_with("GET /b "));
    assert_eq!(field(heads[0], "X-Forwarded-For: "), "198.51.100.7");
    assert_eq!(field(heads[1], "X-Forwarded-For: "), "203.0.113.9");
    let (id1, id2) = (
        field(heads[0], "X-Request-Id: "),
        field(heads[1], "X-Request-Id: "),
    );
    assert!(!id1.is_empty() && id1 != id2, "{id1} {id2}");
    quiet(&w);
}

/// Between keep-alive requests a session may rest (the worker keeps only
/// its summary and lends the session to another connection); in the
/// middle of one it may not. A session blanked and resumed from the
/// summary serves the next request on the same connection as before.
#[test]
fn an_idle_session_rests_and_resumes_as_the_same_connection() {
    let mut w = world();
    w.client_sends(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n01");
    assert!(w.session.resting().is_none(), "a request is in flight");
    w.client_sends(b"23");
    assert!(w.session.resting().is_none(), "the response is owed");
    w.backend_sends(OK);
    assert_eq!(phase(&w), "idle");
    let r = w.session.resting().expect("idle with nothing buffered");
    assert_eq!(r.deadline(), w.session.deadline());
    assert_eq!(r.phase_name(), "idle");

    // A closed connection's session is blanked before another connection
    // uses it; resuming a blank one gives back the same connection.
    let (peer, deadline) = (w.session.peer, w.session.deadline());
    w.session.blank();
    assert!(w.session.is_closed(), "a blank session is no connection");
    w.session.resume(r);
    assert_eq!((w.session.peer, w.session.deadline()), (peer, deadline));
    assert_eq!(phase(&w), "idle");

    w.client_sends(GET_B);
    w.backend_sends(CREATED);
    assert_eq!(statuses(&w.client.received), [200, 201]);
    let got = backend_requests(&w, 0);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (&got[0].start[..], &got[0].body[..]),
        (&b"POST"[..], &b"0123"[..])
    );
    assert_eq!(&got[1].start[..], b"GET");
    quiet(&w);
}
