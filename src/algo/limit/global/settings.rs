//! Where a global limit's counts live, as the store runs on it: plain data,
//! no parsing (the config side reads `rate_limit.store` into it, in
//! `config/store.rs`), so this module never needs the config's error type.

/// What a gateway does while the store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Keep serving on local limits: each gateway enforces the whole limit by
    /// itself (N gateways admit up to N x limit). The default.
    Open,
    /// Deny every rate-limited request (429) until the store answers again.
    Closed,
}

impl FailMode {
    /// The config form.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// `rate_limit.store` with `"kind": "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStoreConfig {
    /// `redis://[user:pass@]host:port[/db]`.
    pub url: String,
    /// Sync period in ms (push local counts, pull global ones).
    pub sync_ms: u64,
    /// Prefix of every Redis key; also seeds the client-key hash, so all
    /// gateways sharing a limit must use the same prefix.
    pub key_prefix: String,
    /// Behaviour while Redis is down.
    pub fail: FailMode,
    /// Connect, read and write timeout of the sync connection, in ms.
    pub timeout_ms: u64,
}

/// `rate_limit.store`: where rate-limit counts live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// In-process only (the default): each gateway limits on its own.
    #[default]
    Local,
    /// Shared through Redis.
    Redis(RedisStoreConfig),
}

impl StoreConfig {
    /// The Redis settings, when the store is Redis.
    pub fn redis(&self) -> Option<&RedisStoreConfig> {
        match self {
            StoreConfig::Local => None,
            StoreConfig::Redis(r) => Some(r),
        }
    }
}
