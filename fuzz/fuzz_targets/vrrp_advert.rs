//! VRRP adverts from the wire (a raw socket's IPv4 packets): decoding never panics, in
//! every mode a receiver may run, and what decodes encodes back to an advert that
//! decodes the same (version 2 and 3, both checksum variants, with and without PASS).
#![no_main]
use ctrlplane::vrrp::packet::{decode, encode, Checksum, Expect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pass = *b"s3cret\0\0";
    for version in [2u8, 3] {
        for sum in [Checksum::Pseudo, Checksum::Plain] {
            for (check_ttl, pass) in [(true, None), (false, Some(&pass))] {
                let e = Expect { version, sum, check_ttl, interval_cs: 100, pass };
                let Ok(r) = decode(data, &e) else { continue };
                // Re-encoded into an IPv4 packet of the same addresses, it reads the same.
                let body = encode(&r.advert, sum, r.src, r.dst);
                let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0];
                ip[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
                ip.extend_from_slice(&r.src.octets());
                ip.extend_from_slice(&r.dst.octets());
                let c = dataplane::packet::checksum::checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                ip.extend_from_slice(&body);
                let again = decode(&ip, &e).expect("an encoded advert decodes");
                assert_eq!(again.advert, r.advert);
            }
        }
    }
});
