//! The one-line summary of what a reload changed, for the event log and
//! the reload's answer: routes added, removed and changed (by name),
//! backends added and removed (by upstream, name and address).

use crate::config::Config;

/// What changed between two configs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Routes only in the new config.
    pub routes_added: Vec<String>,
    /// Routes only in the old config.
    pub routes_removed: Vec<String>,
    /// Routes in both whose settings differ.
    pub routes_changed: Vec<String>,
    /// Backends only in the new config (`upstream/name`).
    pub backends_added: Vec<String>,
    /// Backends only in the old config (or at another address).
    pub backends_removed: Vec<String>,
}

impl Changes {
    /// Compares `old` with `next`. A route "changed" when anything in its
    /// settings did (secrets are compared through their redacted form, so
    /// a new JWT secret alone does not show).
    pub fn between(old: &Config, next: &Config) -> Changes {
        let mut c = Changes::default();
        for r in &next.routes {
            match old.routes.iter().find(|o| o.name == r.name) {
                None => c.routes_added.push(r.name.clone()),
                Some(o) if format!("{o:?}") != format!("{r:?}") => {
                    c.routes_changed.push(r.name.clone())
                }
                Some(_) => {}
            }
        }
        c.routes_removed = old
            .routes
            .iter()
            .filter(|o| !next.routes.iter().any(|r| r.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        let backends = |cfg: &Config| -> Vec<(String, std::net::SocketAddr)> {
            cfg.all_upstreams()
                .iter()
                .flat_map(|u| {
                    u.backends
                        .iter()
                        .map(move |b| (format!("{}/{}", u.name, b.name), b.addr))
                })
                .collect()
        };
        let (before, after) = (backends(old), backends(next));
        c.backends_added = after
            .iter()
            .filter(|b| !before.contains(b))
            .map(|(n, _)| n.clone())
            .collect();
        c.backends_removed = before
            .iter()
            .filter(|b| !after.contains(b))
            .map(|(n, _)| n.clone())
            .collect();
        c
    }

    /// `routes +a -b ~c; backends +u/x -u/y`, or `no route or backend
    /// changes`.
    pub fn summary(&self) -> String {
        let list = |sign: char, names: &[String]| -> Vec<String> {
            names.iter().map(|n| format!("{sign}{n}")).collect()
        };
        let mut parts = Vec::new();
        let routes: Vec<String> = [
            list('+', &self.routes_added),
            list('-', &self.routes_removed),
            list('~', &self.routes_changed),
        ]
        .concat();
        if !routes.is_empty() {
            parts.push(format!("routes {}", routes.join(" ")));
        }
        let backends: Vec<String> = [
            list('+', &self.backends_added),
            list('-', &self.backends_removed),
        ]
        .concat();
        if !backends.is_empty() {
            parts.push(format!("backends {}", backends.join(" ")));
        }
        if parts.is_empty() {
            "no route or backend changes".into()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routes: &str, backends: &str) -> Config {
        Config::from_json(&format!(
            r#"{{"listen": "127.0.0.1:0", "admin": null,
                "upstreams": [{{"name": "users", "backends": [{backends}]}}],
                "routes": [{routes}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn names_what_was_added_removed_and_changed() {
        let a = config(
            r#"{"name": "u", "path_prefix": "/u", "upstream": "users"},
               {"name": "old", "path_prefix": "/old", "upstream": "users"}"#,
            r#"{"name": "u1", "addr": "127.0.0.1:9001"},
               {"name": "u2", "addr": "127.0.0.1:9002"}"#,
        );
        let b = config(
            r#"{"name": "u", "path_prefix": "/users", "upstream": "users"},
               {"name": "new", "path_prefix": "/new", "upstream": "users"}"#,
            r#"{"name": "u1", "addr": "127.0.0.1:9001"},
               {"name": "u3", "addr": "127.0.0.1:9003"}"#,
        );
        let c = Changes::between(&a, &b);
        assert_eq!(
            c.summary(),
            "routes +new -old ~u; backends +users/u3 -users/u2"
        );
        assert_eq!(
            Changes::between(&a, &a).summary(),
            "no route or backend changes"
        );
    }
}
