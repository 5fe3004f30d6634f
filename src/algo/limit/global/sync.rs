//! The sync thread: every `sync_ms`, one round trip to Redis for all keys
//! touched since the last sync; reconnects with exponential backoff.
//!
//! It is the only thread that talks to Redis, so the event loops never wait
//! on it. Store state changes (up/down) are logged once per transition by
//! [`super::StoreInner`]. Stops when its [`super::GlobalStore`] is dropped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{redis_store, StoreInner};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs until `stop` is disconnected.
pub fn run(inner: Arc<StoreInner>, stop: Receiver<()>) {
    let cfg = inner.cfg.clone();
    let period = Duration::from_millis(cfg.sync_ms);
    let client = match redis::Client::open(cfg.url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            // Validated at config load; kept as "down" rather than a panic.
            inner.mark_down(&format!("invalid URL: {e}"));
            return;
        }
    };
    let mut con = None;
    let mut backoff = period;
    let mut backlog = BTreeSet::new();
    loop {
        let wait = if sync_once(&inner, &client, &mut con, &mut backlog) {
            backoff = period;
            period
        } else {
            let w = backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF.max(period));
            w
        };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// One sync; `false` when the store failed (the caller backs off).
fn sync_once(
    inner: &StoreInner,
    client: &redis::Client,
    con: &mut Option<redis::Connection>,
    backlog: &mut BTreeSet<u32>,
) -> bool {
    if con.is_none() {
        match redis_store::connect(client, &inner.cfg) {
            Ok(c) => *con = Some(c),
            Err(e) => {
                inner.mark_down(&format!("connect: {e}"));
                return false;
            }
        }
    }
    let Some(c) = con.as_mut() else {
        return false;
    };
    let table = inner.current_table();
    let records = match &table {
        Some(t) => t.collect(backlog),
        None => {
            backlog.clear();
            Vec::new()
        }
    };
    let started = Instant::now();
    match redis_store::exchange(c, &inner.cfg, table.as_deref(), &records, &inner.node_id) {
        Ok((counts, nodes)) => {
            if let Some(t) = &table {
                t.apply(&records, &counts, backlog);
            }
            inner.mark_up(nodes, started.elapsed().as_micros() as u64);
            true
        }
        Err(e) => {
            // The connection may be half-dead: start afresh. Counts stay
            // queued and are pushed by the next successful sync (a push that
            // landed but whose answer was lost is pushed twice: over-count).
            *con = None;
            inner.mark_down(&e.to_string());
            false
        }
    }
}
