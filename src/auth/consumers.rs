//! The configured consumers: their names, their keys (as digests), and
//! which of them carry their own rate limit.

use std::collections::HashMap;

use crate::config::ConsumerConfig;

use super::key::KeyStore;

/// A configured consumer: its index in `consumers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsumerId(pub u32);

impl ConsumerId {
    /// As an index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Every configured consumer.
#[derive(Debug, Default)]
pub struct Consumers {
    names: Vec<String>,
    by_name: HashMap<String, ConsumerId>,
    keys: KeyStore,
    /// Per consumer: its place among those with their own `rate_limit`.
    own_limit: Vec<Option<usize>>,
}

impl Consumers {
    /// From the config (already checked: unique names, unique keys).
    pub fn new(config: &[ConsumerConfig]) -> Consumers {
        let mut c = Consumers::default();
        let mut with_limit = 0;
        for (i, cc) in config.iter().enumerate() {
            let id = ConsumerId(i as u32);
            c.names.push(cc.name.clone());
            c.by_name.insert(cc.name.clone(), id);
            for d in &cc.key_digests {
                c.keys.insert(*d, id);
            }
            c.own_limit.push(cc.rate_limit.as_ref().map(|_| {
                with_limit += 1;
                with_limit - 1
            }));
        }
        c
    }

    /// How many consumers there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The consumer's name.
    #[inline]
    pub fn name(&self, id: ConsumerId) -> &str {
        &self.names[id.index()]
    }

    /// The consumer named `name`.
    #[inline]
    pub fn by_name(&self, name: &str) -> Option<ConsumerId> {
        self.by_name.get(name).copied()
    }

    /// The API keys.
    #[inline]
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The consumer's place among those with their own `rate_limit`.
    #[inline]
    pub fn own_limit(&self, id: ConsumerId) -> Option<usize> {
        self.own_limit.get(id.index()).copied().flatten()
    }

    /// How many consumers have their own `rate_limit`.
    pub fn with_own_limit(&self) -> usize {
        self.own_limit.iter().flatten().count()
    }
}
