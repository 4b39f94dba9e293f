//! Random sequences of store operations checked against a model: the driver
//! of the engine's proptest `store::model_tests` (add, partial writes, flush,
//! pin, unpin, gc, power loss, `kill -9`, reopen, an I/O fault at the Nth
//! write), on operations decoded from the input by `Op::decode` (a tag byte
//! and up to two argument bytes each; every input decodes). After every step
//! the store must agree with the model and pass `check`; a disagreement
//! panics with the step and what differs.
//!
//! The model and driver are not copied: this target compiles the engine's
//! test file itself, which names the engine only through the imports
//! below.

#![no_main]

use libfuzzer_sys::fuzz_target;
// `crate::Hash`, `crate::content`, `crate::store` and `crate::error_chain`
// in the shared file resolve to these.
use swarm_engine::{Hash, content, error_chain, store};

// `Op::encode` is for the proptest's round trip only.
#[allow(dead_code)]
#[path = "../../engine/src/store/model_tests.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    model::run(&model::decode_all(data, model::MAX_OPS));
});
