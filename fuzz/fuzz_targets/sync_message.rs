//! Connection sync messages from the wire (the kernel's version 1, UDP payloads):
//! decoding never panics, and the connections of a message that decodes encode into
//! messages that decode to the same connections.
#![no_main]
use ctrlplane::sync::msg::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((syncid, conns)) = decode(data) else { return };
    let mut back = Vec::new();
    for m in encode(syncid, &conns, 1472) {
        let (id, c) = decode(&m).expect("an encoded message decodes");
        assert_eq!(id, syncid);
        back.extend(c);
    }
    assert_eq!(back, conns);
});
