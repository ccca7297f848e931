//! Every parser over arbitrary bytes: dissect() walks Ethernet, VLAN, ARP, IPv4/IPv6 and
//! TCP/UDP/ICMP, checking lengths and checksums; the fast path's own parsers (the
//! untagged link layer, the one parse of an IPv4 header, an ICMP error's quote) must
//! agree with the checked views. Nothing may panic.
#![no_main]
use dataplane::ipvs::icmp::quoted;
use dataplane::packet::{self, ethernet, tcp, IpHdr, Ipv4Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = packet::dissect(data);
    // The TCP option walker on its own, as it will see option areas of any shape.
    for opt in tcp::options(data) {
        let _ = opt;
    }
    if let Some(h) = ethernet::untagged(data) {
        let l2 = packet::parse_l2(data).expect("untagged frames parse");
        assert_eq!((h.dst, h.src, h.ethertype), (l2.dst.bits(), l2.src.bits(), l2.ethertype));
    }
    // The whole input as an IPv4 packet: accepted exactly when the view accepts it
    // with a correct checksum, and then with the view's fields.
    match IpHdr::parse_v4(data, 0) {
        Ok(h) => {
            let v = Ipv4Packet::new_checked(data).expect("the view accepts it too");
            assert!(v.verify_checksum());
            assert_eq!((h.src, h.dst, h.proto, usize::from(h.len)), (v.src(), v.dst(), v.protocol(), v.total_len()));
            let _ = data.get(h.l4()..h.end()).and_then(quoted);
        }
        Err(_) => assert!(Ipv4Packet::new_checked(data).map_or(true, |v| !v.verify_checksum())),
    }
    let _ = quoted(data);
});
