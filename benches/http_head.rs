//! Per-request HTTP work of the gateway, next to its floor.
//!
//! - `head/*`: `RequestHead::parse` + `write_request` (the head as the
//!   backend gets it) on a curl-like and a browser-like (15 headers) request,
//!   next to a bare `httparse::Request::parse` of the same bytes. Target:
//!   within 2x of bare httparse.
//! - `chunked/*`: `ChunkedDecoder::feed` throughput (MB/s) over bodies made
//!   of small and of large chunks.
//! - `normalize/*`: `normalize_target` (the path routes match on and the
//!   backend receives) on a typical API path, one with a query, and one
//!   full of tricks (dot segments, escapes, doubled slashes); ns per path.
//! - `admission`: the pipeline's per-request algorithm work: rate limiter
//!   check + balancer pick + breaker permit acquire/record, as the worker
//!   runs them (token bucket that admits, round robin over 3 backends).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use api_gateway::algo::balance::{self, PickKey};
use api_gateway::algo::breaker::Outcome;
use api_gateway::algo::limit;
use api_gateway::algo::Nanos;
use api_gateway::backend::{BackendDef, BackendTable};
use api_gateway::http::chunked::ChunkedDecoder;
use api_gateway::http::normalize::normalize_target;
use api_gateway::http::request::{RequestHead, RequestLimits};
use api_gateway::http::rewrite::{write_request, ForwardInfo};
use api_gateway_admin::{BalanceSpec, BreakerSpec, LimitSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CURL: &[u8] = b"GET /api/items?page=2 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
\r\n";

const BROWSER: &[u8] = b"GET /api/items/42?fields=name,price&expand=tags HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://app.example.com/items/42\r\n\
Origin: https://app.example.com\r\n\
Connection: keep-alive\r\n\
Cookie: session=6f9c1e0b2a7d4c3e8f1a5b9d0c2e4f6a; theme=dark; consent=1\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc123\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-site\r\n\
X-Request-Id: 7d3f2a1c-9b8e-4f6d-a5c4-3b2a1f0e9d8c\r\n\
Priority: u=4\r\n\
\r\n";

const LIMITS: RequestLimits = RequestLimits {
    max_uri: 8192,
    max_body: 10 << 20,
};

fn heads(c: &mut Criterion) {
    let info = ForwardInfo {
        client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        request_id: b"1a2b3c4d00000001",
        allowed_upgrades: &["websocket".to_string()],
        path: None,
        edits: &api_gateway::http::edits::NONE,
        consumer: b"",
        scheme: api_gateway::http::rewrite::Scheme::Http,
    };
    for (name, raw) in [("curl", CURL), ("browser", BROWSER)] {
        let mut g = c.benchmark_group(format!("head/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("httparse (floor)", |b| {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            b.iter(|| {
                let mut req = httparse::Request::new(&mut headers);
                black_box(req.parse(black_box(raw)).unwrap());
            })
        });
        g.bench_function("parse", |b| {
            let mut head = RequestHead::default();
            b.iter(|| black_box(head.parse(black_box(raw), &LIMITS).unwrap()))
        });
        g.bench_function("parse+rewrite", |b| {
            let mut head = RequestHead::default();
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                assert!(head.parse(black_box(raw), &LIMITS).unwrap());
                out.clear();
                write_request(&mut out, raw, &head, &info);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

/// A chunked body of `total` payload bytes in chunks of `chunk` bytes.
fn chunked_body(total: usize, chunk: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(total + total / chunk * 8 + 16);
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'x', n));
        body.extend_from_slice(b"\r\n");
        left -= n;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn chunked(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunked");
    for (name, chunk) in [("64B-chunks", 64), ("16KiB-chunks", 16 * 1024)] {
        let body = chunked_body(1 << 20, chunk);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = ChunkedDecoder::new(u64::MAX, 64 * 1024);
                // Fed in 16 KiB reads, as from the connection buffer.
                for part in body.chunks(16 * 1024) {
                    black_box(d.feed(black_box(part)).unwrap());
                }
                assert!(d.is_done());
            })
        });
    }
    g.finish();
}

fn admission(c: &mut Criterion) {
    let defs: Vec<BackendDef> = (1..=3)
        .map(|i| BackendDef {
            name: format!("b{i}"),
            addr: format!("127.0.0.1:808{i}").parse().unwrap(),
            weight: 1,
            tls: None,
        })
        .collect();
    let table = BackendTable::new(&defs, BreakerSpec::default());
    let limiter = limit::build(
        &LimitSpec::TokenBucket {
            capacity: 1 << 30,
            refill_per_sec: 1e12,
        },
        65_536,
        &Default::default(),
    );
    let balancer = balance::build(&BalanceSpec::RoundRobin, &table);
    let mut g = c.benchmark_group("admission");
    g.throughput(Throughput::Elements(1));
    g.bench_function("limit+pick+breaker", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let now = Nanos(1_000_000_000 + i * 1000);
            // A few hundred distinct clients, as key hashes.
            let key = (i % 256).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            black_box(limiter.check(key, now));
            let mut permit = None;
            let picked = balancer.pick(
                &PickKey {
                    client_hash: key,
                    now,
                },
                &table,
                &mut |id| {
                    permit = table.get(id).breaker.try_acquire(now);
                    permit.is_some()
                },
            );
            let (Some(id), Some(p)) = (picked, permit) else {
                panic!("no backend");
            };
            black_box(table.get(id).breaker.record(p, Outcome::Success, now));
        })
    });
    g.finish();
}

fn normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(1));
    for (name, path) in [
        ("plain", &b"/api/users/42/orders"[..]),
        ("query", b"/api/items/42?fields=name,price&expand=tags"),
        (
            "tricky",
            b"/api/./users//%61dmin/../42/%7eorders/%3a%2e%2e/x",
        ),
    ] {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| black_box(normalize_target(black_box(path), &mut out).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, heads, chunked, normalize, admission);
criterion_main!(benches);
