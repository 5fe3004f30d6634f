//! Network-address vocabulary that is not HTTP: address sets from the
//! configuration.

pub mod cidr;
