//! Why a set of route defs cannot be compiled. Every error names the route by
//! its index and the field by its config name (`routes[2].hosts[0]: ...`), so
//! the config layer can report it as is.

use std::fmt;

/// A route def the table refuses; `Display` gives the config-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// `routes[i].name` is empty.
    EmptyName {
        /// Route index.
        route: usize,
    },
    /// `routes[i].name` repeats an earlier route's name.
    DuplicateName {
        /// Route index (the later of the two).
        route: usize,
        /// The repeated name.
        name: String,
    },
    /// `routes[i].path` / `routes[i].path_prefix` is not a normalized path.
    BadPath {
        /// Route index.
        route: usize,
        /// `"path"` or `"path_prefix"`, as in the config.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `routes[i].hosts[j]` is neither a host name nor `*.` + a host name.
    BadHost {
        /// Route index.
        route: usize,
        /// Index in `hosts`.
        host: usize,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `routes[i].methods[j]` is not an RFC 9110 token.
    BadMethod {
        /// Route index.
        route: usize,
        /// Index in `methods`.
        method: usize,
        /// The offending value.
        value: String,
    },
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::EmptyName { route } => write!(f, "routes[{route}].name: must not be empty"),
            RouteError::DuplicateName { route, name } => {
                write!(f, "routes[{route}].name: duplicate name {name:?}")
            }
            RouteError::BadPath {
                route,
                field,
                value,
                reason,
            } => write!(f, "routes[{route}].{field}: {reason} (got {value:?})"),
            RouteError::BadHost {
                route,
                host,
                value,
                reason,
            } => write!(f, "routes[{route}].hosts[{host}]: {reason} (got {value:?})"),
            RouteError::BadMethod {
                route,
                method,
                value,
            } => write!(
                f,
                "routes[{route}].methods[{method}]: not a method token (got {value:?})"
            ),
        }
    }
}

impl std::error::Error for RouteError {}
