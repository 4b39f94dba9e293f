//! Arbitrary bytes into the wire decoder, as a peer could send them.
//! Decoding must never panic, and whatever decodes must survive a round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_engine::wire::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = Message::decode_frame(data) {
        assert!(used <= data.len());
        let again = msg.encode();
        assert_eq!(
            Message::decode_frame(&again),
            Ok(Some((msg, again.len()))),
            "a decoded message does not round-trip"
        );
    }
    let _ = Message::decode_body(data);
});
