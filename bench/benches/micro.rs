//! Micro-benchmarks (criterion): the pieces of the fast path one at a time.
//!
//!   cargo bench -p rvs-bench --bench micro

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::ipvs::conn::{Conn, ConnTable, Fwd, Key};
use dataplane::ipvs::sched::{
    DestLoad, Flow, MaglevTable, SchedFlags, SchedKind, SchedTables, Scheduler, ServerKey,
};
use dataplane::packet::build::{self, Link};
use dataplane::packet::MacAddr;
use dataplane::snapshot::{Snapshot, SnapshotCell};
use dataplane::worker::BURST;
use rvs_bench::path::PathRig;
use std::net::Ipv4Addr;

const L: Link = Link {
    src: MacAddr([2, 0, 0, 0, 0, 1]),
    dst: MacAddr([2, 0, 0, 0, 0, 2]),
};

fn parse(c: &mut Criterion) {
    let f = build::tcp(
        L,
        (Ipv4Addr::new(198, 19, 0, 1), 40000),
        (Ipv4Addr::new(198, 18, 1, 100), 80),
        (1, 1),
        0x18,
        &[],
        &[0; 10],
    );
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dissect_tcp_64B", |b| {
        b.iter(|| dataplane::packet::dissect(black_box(&f)).is_ok())
    });
    g.bench_function("ipv4_header_checksum", |b| {
        b.iter(|| dataplane::packet::checksum::checksum(black_box(&f[14..34])))
    });
    g.finish();
}

fn client(i: u32) -> (Ipv4Addr, u16) {
    (
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + (i % 65536)),
        1024 + (i / 65536) as u16,
    )
}

fn conn(i: u32) -> Conn {
    let (a, p) = client(i);
    let mut c = Conn::new(
        6,
        (a, p),
        (Ipv4Addr::new(198, 18, 1, 100), 80),
        (Ipv4Addr::new(198, 18, 0, 11), 80),
        Fwd::Nat,
        0,
    );
    c.expires = 900;
    c
}

fn conns(c: &mut Criterion) {
    let mut g = c.benchmark_group("conn_table");
    g.throughput(Throughput::Elements(1));
    for &n in &[1_000u32, 1_000_000, 10_000_000] {
        let mut t = ConnTable::new(n as usize + 1, 42);
        for i in 0..n {
            t.insert(conn(i)).expect("room");
        }
        let keys: Vec<Key> = (0..n)
            .step_by((n as usize / 1000).max(1))
            .map(|i| conn(i).in_key())
            .collect();
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::new("lookup_hit", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 7919) % keys.len();
                t.lookup_in(black_box(&keys[k]))
            })
        });
        let mut next = n;
        g.bench_with_input(BenchmarkId::new("insert_remove", n), &n, |b, _| {
            b.iter(|| {
                let i = t.insert(conn(next)).expect("room");
                next = next.wrapping_add(1);
                t.remove(i);
            })
        });
    }
    g.finish();
}

fn loads(n: u32) -> (Vec<DestLoad>, Vec<ServerKey>) {
    let d = (0..n)
        .map(|i| DestLoad {
            id: i,
            weight: 1 + i % 3,
            active: i * 7 % 13,
            inactive: i % 5,
            overloaded: false,
        })
        .collect();
    let k = (0..n)
        .map(|i| ServerKey {
            addr: Ipv4Addr::from(0xc612_0000 + i),
            port: 80,
            weight: 1 + i % 3,
        })
        .collect();
    (d, k)
}

fn schedulers(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler_pick_10_servers");
    g.throughput(Throughput::Elements(1));
    let (d, k) = loads(10);
    for kind in SchedKind::ALL {
        let mut s = Scheduler::new(
            kind,
            SchedFlags::default(),
            SchedTables::build(kind, &k),
            &d,
            1,
        );
        let mut i = 0u32;
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let (a, p) = client(i);
                s.pick(
                    black_box(&d),
                    &Flow {
                        saddr: a,
                        sport: p,
                        daddr: Ipv4Addr::from(0xc613_0000 + (i % 512)),
                        dport: 80,
                    },
                    0,
                )
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("maglev_build_m65537");
    g.sample_size(10);
    for n in [10u32, 100, 1000] {
        let (_, k) = loads(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| MaglevTable::build(black_box(&k), 65537))
        });
    }
    g.finish();
}

fn snapshots(c: &mut Criterion) {
    let cell = SnapshotCell::new(Snapshot::default());
    let mut held = cell.load();
    c.bench_function("snapshot_check_unchanged", |b| {
        b.iter(|| {
            // What a worker does every loop: compare one generation.
            black_box(cell.generation() != held.generation)
        })
    });
    c.bench_function("snapshot_publish_and_adopt", |b| {
        b.iter(|| {
            cell.publish(Snapshot::default());
            if cell.generation() != held.generation {
                held = cell.load();
            }
        })
    });
}

/// rvs's own per-packet path on the throughput benchmark's director (see `rvs_bench::path`).
fn worker_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker_path_1k_flows");
    g.throughput(Throughput::Elements(BURST as u64));
    for mode in ["dr", "tun", "nat", "fullnat"] {
        let mut rig = PathRig::new(mode, 1000).expect("the benchmark's director");
        g.bench_function(mode, |b| b.iter(|| rig.burst()));
        let drops = rig.drops();
        assert!(drops.is_empty(), "{mode}: the worker dropped {drops:?}");
        assert!(rig.io.sent > 0, "{mode}: the worker forwarded nothing");
    }
    g.finish();
}

criterion_group!(micro, parse, conns, schedulers, snapshots, worker_path);
criterion_main!(micro);
