//! Fixtures for tests, benchmarks and fuzz targets (feature "testing").

pub use crate::packet::build;

/// The director MAC of `robustness_snapshot`.
pub const ROBUSTNESS_DIRECTOR_MAC: crate::packet::MacAddr =
    crate::packet::MacAddr([2, 0, 0, 0, 0, 0xd0]);

/// A snapshot with one service of every forwarding method (and persistence, TOA, UDP),
/// static neighbours for its peers and expire_nodest_conn on: what the fuzz targets and
/// robustness tests drive a worker with.
pub fn robustness_snapshot() -> crate::snapshot::Snapshot {
    use crate::ipvs::conn::Fwd;
    use crate::ipvs::sched::{SchedFlags, SchedKind};
    use crate::ipvs::service::{IpvsTable, Persistence, Proto, RealServer, Service};
    use std::net::Ipv4Addr;
    let rip = [Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 12)];
    let mut svcs = Vec::new();
    for (i, fwd) in [Fwd::Nat, Fwd::Dr, Fwd::Tun, Fwd::FullNat, Fwd::Nat]
        .into_iter()
        .enumerate()
    {
        let dests: Vec<RealServer> = rip
            .iter()
            .enumerate()
            .map(|(j, &a)| RealServer {
                slot: (i * 2 + j) as u32,
                addr: a,
                port: if fwd == Fwd::Dr || fwd == Fwd::Tun {
                    80 + i as u16
                } else {
                    8080
                },
                fwd,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            })
            .collect();
        let kind = [
            SchedKind::Rr,
            SchedKind::Wlc,
            SchedKind::Mh,
            SchedKind::Sh,
            SchedKind::Lblcr,
        ][i];
        svcs.push(Service {
            slot: i as u32,
            proto: if i == 4 { Proto::Udp } else { Proto::Tcp },
            vip: Ipv4Addr::new(198, 18, 1, 100),
            port: 80 + i as u16,
            sched: kind,
            flags: SchedFlags::default(),
            persistence: (i == 1).then_some(Persistence {
                timeout: 60,
                netmask: Ipv4Addr::new(255, 255, 255, 0),
            }),
            local_addrs: vec![Ipv4Addr::new(198, 18, 0, 3)],
            toa: fwd == Fwd::FullNat,
            tables: Service::build_tables(kind, &dests),
            dests,
            version: 1,
            client_ip_owned: false,
        });
    }
    let ports = vec![crate::snapshot::PortInfo {
        name: "lan0".into(),
        mac: ROBUSTNESS_DIRECTOR_MAC,
        mtu: 1500,
        addresses: vec![
            "198.18.0.2/24".parse().expect("prefix"),
            "198.18.1.2/24".parse().expect("prefix"),
        ],
        kernel: None,
    }];
    let neigh = [
        (Ipv4Addr::new(198, 18, 1, 1), 0xc1u8),
        (rip[0], 0x11),
        (rip[1], 0x12),
    ]
    .into_iter()
    .map(|(ip, m)| crate::snapshot::StaticNeigh {
        ip,
        mac: crate::packet::MacAddr([2, 0, 0, 0, 0, m]),
        port: 0,
    })
    .collect();
    crate::snapshot::Snapshot::new(ports, &[], neigh, crate::net::neigh::NeighParams::default())
        .with_ipvs(IpvsTable::new(
            svcs,
            crate::ipvs::state::Timeouts::default(),
            true,
            false,
        ))
}
