//! The Redis side of a sync: one pipeline (one round trip) per sync for all
//! active keys plus the gateway heartbeat, through the `redis` crate.
//!
//! Keys: `{prefix}:{window_ms}:{key:016x}:{window}` hold one window's global
//! count (`INCRBY` + `PEXPIRE`, so they expire on their own two windows
//! later); `{prefix}:nodes` is a sorted set of gateway ids scored by the
//! Redis server's clock, trimmed by a small Lua script. Only the sync thread
//! calls this; a timeout on the connection bounds every call.

use std::time::Duration;

use redis::{Client, Connection, RedisResult};

use super::table::{Counts, GlobalTable, Kind, Record};
use super::RedisStoreConfig;

/// Heartbeat: register this gateway, forget silent ones, count the rest.
/// `TIME` comes from the server so gateway clock skew cannot drop a peer.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
";

/// A gateway is live while its heartbeat is younger than this (ms).
pub fn node_ttl_ms(sync_ms: u64) -> u64 {
    (10 * sync_ms).max(1_000)
}

/// Opens the sync connection with every timeout set.
pub fn connect(client: &Client, cfg: &RedisStoreConfig) -> RedisResult<Connection> {
    let t = Duration::from_millis(cfg.timeout_ms);
    let con = client.get_connection_with_timeout(t)?;
    con.set_read_timeout(Some(t))?;
    con.set_write_timeout(Some(t))?;
    Ok(con)
}

fn count_key(cfg: &RedisStoreConfig, window_ms: u64, key: u64, widx: u64) -> String {
    format!("{}:{window_ms}:{key:016x}:{widx}", cfg.key_prefix)
}

/// One round trip: pushes `records` of `table` and the heartbeat of
/// `node_id`; returns the counts (same order) and the live gateway count.
pub fn exchange(
    con: &mut Connection,
    cfg: &RedisStoreConfig,
    table: Option<&GlobalTable>,
    records: &[Record],
    node_id: &str,
) -> RedisResult<(Vec<Counts>, u64)> {
    let mut pipe = redis::pipe();
    let mut sliding = false;
    if let Some(t) = table {
        sliding = t.kind() == Kind::Sliding;
        // Long enough for the window and the next one (sliding counters
        // weigh the previous window); refreshed at each push.
        let ttl = 2 * t.window_ms() + 1_000;
        for r in records {
            let k = count_key(cfg, t.window_ms(), r.key, r.widx);
            pipe.cmd("INCRBY").arg(&k).arg(r.delta);
            pipe.cmd("PEXPIRE").arg(&k).arg(ttl).ignore();
            if sliding {
                let p = count_key(cfg, t.window_ms(), r.key, r.widx.saturating_sub(1));
                pipe.cmd("INCRBY").arg(&p).arg(r.prev_delta);
                pipe.cmd("PEXPIRE").arg(&p).arg(ttl).ignore();
            }
        }
    }
    pipe.cmd("EVAL")
        .arg(HEARTBEAT)
        .arg(1)
        .arg(format!("{}:nodes", cfg.key_prefix))
        .arg(node_id)
        .arg(node_ttl_ms(cfg.sync_ms));
    let vals: Vec<i64> = pipe.query(con)?;
    let per = if sliding { 2 } else { 1 };
    let nodes = vals.last().copied().unwrap_or(1).max(1) as u64;
    let counts = vals[..vals.len().saturating_sub(1)]
        .chunks(per)
        .map(|c| Counts {
            cur: c[0].max(0) as u64,
            prev: c.get(1).map(|&p| p.max(0) as u64),
        })
        .collect();
    Ok((counts, nodes))
}
