//! Every view over arbitrary bytes: dissect() walks Ethernet, VLAN, ARP, IPv4/IPv6 and
//! TCP/UDP/ICMP, checking lengths and checksums. Nothing may panic.
#![no_main]
use dataplane::packet::{self, tcp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = packet::dissect(data);
    // The TCP option walker on its own, as it will see option areas of any shape.
    for opt in tcp::options(data) {
        let _ = opt;
    }
});
