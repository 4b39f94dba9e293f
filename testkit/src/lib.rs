//! Real servers for the tests and benchmarks of swarm: a static HTTP(S)
//! server on hyper with faults and a rate cap ([`http`]), and harnesses for
//! nginx and Python's `http.server` ([`servers`]).

pub mod http;
pub mod servers;
