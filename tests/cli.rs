//! End-to-end tests of the `swarm` binary against real files and a real store.

mod common;
