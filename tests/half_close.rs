//! A client that pipelines requests and then half-closes
//! (`shutdown(SHUT_WR)`) gets an answer to every request it sent in full
//! before the FIN, in order, and then the connection closes (RFC 9112
//! §9.6). A head cut short by the FIN is dropped without an answer.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;

use support::*;

/// Sends `raw`, shuts the write side, and reads responses until EOF.
fn pipeline_then_fin(addr: std::net::SocketAddr, raw: &[u8]) -> (Vec<Response>, Vec<u8>) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    while let Ok(resp) = read_response(&mut r, false) {
        out.push(resp);
        if out.len() > 10 {
            break;
        }
    }
    // Whatever followed the last parsable response (should be nothing).
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    (out, rest)
}

fn bodies(rs: &[Response]) -> Vec<String> {
    rs.iter().map(|r| r.text()).collect()
}

#[test]
fn two_pipelined_requests_then_fin_are_both_answered() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let (rs, rest) = pipeline_then_fin(
        gw.listen_addr(),
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(bodies(&rs), ["GET /one", "GET /two"]);
    assert!(rs.iter().all(|r| r.status == 200));
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // The connection then closed (`read_to_end` above returned). The last
    // response says `Connection: close` only if the FIN was read before
    // its head was written: on a loaded machine the client's `shutdown`
    // can come later than that, so the header is not asserted.
    gw.shutdown();
}

#[test]
fn three_pipelined_requests_with_a_body_then_fin_are_all_answered() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let (rs, _) = pipeline_then_fin(
        gw.listen_addr(),
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(bodies(&rs), ["GET /one", "POST /two", "GET /three"]);
    assert_eq!(backend.requests.load(Ordering::SeqCst), 3);
    gw.shutdown();
}

#[test]
fn partial_request_before_fin_is_dropped_after_the_complete_one_is_answered() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let (rs, rest) = pipeline_then_fin(
        gw.listen_addr(),
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHos",
    );
    assert_eq!(bodies(&rs), ["GET /one"]);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert_eq!(backend.requests.load(Ordering::SeqCst), 1);
    gw.shutdown();
}

#[test]
fn pipelined_local_replies_then_fin_are_all_answered() {
    // Gateway-made answers (404 off the routes) take the same path.
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.routes = vec![api_gateway::config::RouteConfig::prefix(0, "/api/")];
    let gw = start(cfg);
    let (rs, _) = pipeline_then_fin(
        gw.listen_addr(),
        b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /api/x HTTP/1.1\r\nHost: a\r\n\r\nGET /nope2 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 200, 404]);
    gw.shutdown();
}
