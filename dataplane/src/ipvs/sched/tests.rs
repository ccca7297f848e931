use super::*;

fn d(id: u32, weight: u32) -> DestLoad {
    DestLoad {
        id,
        weight,
        ..Default::default()
    }
}

fn keys(dests: &[DestLoad]) -> Vec<ServerKey> {
    dests
        .iter()
        .map(|x| ServerKey {
            addr: Ipv4Addr::from(0xc612_0000 + x.id),
            port: 80,
            weight: x.weight,
        })
        .collect()
}

fn sched(kind: SchedKind, dests: &[DestLoad]) -> Scheduler {
    Scheduler::new(
        kind,
        SchedFlags::default(),
        SchedTables::build(kind, &keys(dests)),
        dests,
        42,
    )
}

fn flow(s: u32) -> Flow {
    Flow {
        saddr: Ipv4Addr::from(s),
        sport: 1000 + (s % 1000) as u16,
        daddr: Ipv4Addr::new(198, 18, 0, 100),
        dport: 80,
    }
}

fn picks(s: &mut Scheduler, dests: &[DestLoad], n: usize) -> String {
    (0..n)
        .map(|_| {
            s.pick(dests, &flow(1), 0)
                .map_or('-', |i| (b'A' + i as u8) as char)
        })
        .collect()
}

#[test]
fn wrr_follows_the_kernel_sequence() {
    let dests = [d(1, 4), d(2, 3), d(3, 2)];
    let mut s = sched(SchedKind::Wrr, &dests);
    assert_eq!(picks(&mut s, &dests, 18), "AABABCABCAABABCABC");
}

#[test]
fn wrr_steps_by_the_gcd_and_skips_weight_zero() {
    let dests = [d(1, 4), d(2, 0), d(3, 2)];
    let mut s = sched(SchedKind::Wrr, &dests);
    assert_eq!(picks(&mut s, &dests, 6), "AACAAC");
    let none = [d(1, 0), d(2, 0)];
    let mut s = sched(SchedKind::Wrr, &none);
    assert_eq!(picks(&mut s, &none, 2), "--");
}

#[test]
fn wrr_weights_3_2_1_proportion() {
    let dests = [d(1, 3), d(2, 2), d(3, 1)];
    let mut s = sched(SchedKind::Wrr, &dests);
    let seq = picks(&mut s, &dests, 600);
    let count = |c| seq.chars().filter(|x| *x == c).count();
    assert_eq!((count('A'), count('B'), count('C')), (300, 200, 100));
}

#[test]
fn rr_rotates_over_available_servers_and_survives_updates() {
    let mut dests = [d(1, 1), d(2, 1), d(3, 1)];
    let mut s = sched(SchedKind::Rr, &dests);
    assert_eq!(picks(&mut s, &dests, 4), "ABCA");
    dests[1].weight = 0; // quiesced
    assert_eq!(picks(&mut s, &dests, 3), "CAC");
    dests[1].weight = 1;
    dests[2].overloaded = true;
    s.update(SchedTables::None, &dests);
    assert_eq!(
        picks(&mut s, &dests, 3),
        "ABA",
        "position kept across the update"
    );
}

/// The kernel's ip_vs_rr_del_dest: removing the server rr last picked steps its place
/// back to the one before, so the next pick is the server after the removed one (not
/// the first again); removing another keeps the place on the same server.
#[test]
fn rr_steps_back_when_its_last_pick_is_removed() {
    let all = [d(1, 1), d(2, 1), d(3, 1), d(4, 1)];
    let mut s = sched(SchedKind::Rr, &all);
    assert_eq!(picks(&mut s, &all, 2), "AB");
    // B (id 2) leaves: the place steps back to A; the next is C (now index 1).
    let without_b = [d(1, 1), d(3, 1), d(4, 1)];
    s.update(SchedTables::None, &without_b);
    assert_eq!(picks(&mut s, &without_b, 3), "BCA", "C, D, then A");
    // A (id 1, the last pick) is index 0: the place goes to the head; the next is C.
    let without_a = [d(3, 1), d(4, 1)];
    s.update(SchedTables::None, &without_a);
    assert_eq!(picks(&mut s, &without_a, 1), "A", "C (index 0)");
    // Removing a server before the last pick keeps the place on it (D next after C).
    let mut s = sched(SchedKind::Rr, &all);
    assert_eq!(picks(&mut s, &all, 3), "ABC");
    let without_a = [d(2, 1), d(3, 1), d(4, 1)];
    s.update(SchedTables::None, &without_a);
    assert_eq!(picks(&mut s, &without_a, 1), "C", "D (index 2)");
}

#[test]
fn least_connection_family() {
    let mut dests = [d(1, 1), d(2, 3), d(3, 1)];
    // overhead = active*256 + inactive
    dests[0].active = 2;
    dests[1].active = 5;
    dests[2].active = 1;
    dests[2].inactive = 300;
    // lc ignores weights: overheads 512, 1280, 556 -> A
    assert_eq!(
        sched(SchedKind::Lc, &dests).pick(&dests, &flow(1), 0),
        Some(0)
    );
    // wlc: 512/1, 1280/3=426.7, 556/1 -> B
    assert_eq!(
        sched(SchedKind::Wlc, &dests).pick(&dests, &flow(1), 0),
        Some(1)
    );
    // sed: (active+1)/weight: 3/1, 6/3=2, 2/1=2 -> B (first of equals)
    assert_eq!(
        sched(SchedKind::Sed, &dests).pick(&dests, &flow(1), 0),
        Some(1)
    );
    // nq: no idle server -> sed's pick
    assert_eq!(
        sched(SchedKind::Nq, &dests).pick(&dests, &flow(1), 0),
        Some(1)
    );
    dests[2].active = 0;
    assert_eq!(
        sched(SchedKind::Nq, &dests).pick(&dests, &flow(1), 0),
        Some(2),
        "nq takes the idle server"
    );
    // weight 0 is never picked
    dests[1].weight = 0;
    assert_eq!(
        sched(SchedKind::Wlc, &dests).pick(&dests, &flow(1), 0),
        Some(2)
    );
}

#[test]
fn fo_and_ovf() {
    let mut dests = [d(1, 5), d(2, 10), d(3, 10)];
    assert_eq!(
        sched(SchedKind::Fo, &dests).pick(&dests, &flow(1), 0),
        Some(1),
        "first of the heaviest"
    );
    dests[1].overloaded = true;
    assert_eq!(
        sched(SchedKind::Fo, &dests).pick(&dests, &flow(1), 0),
        Some(2)
    );
    dests[1].overloaded = false;
    dests[1].active = 11;
    assert_eq!(
        sched(SchedKind::Ovf, &dests).pick(&dests, &flow(1), 0),
        Some(2),
        "B has more active than its weight"
    );
    dests[2].active = 10;
    assert_eq!(
        sched(SchedKind::Ovf, &dests).pick(&dests, &flow(1), 0),
        Some(2),
        "active == weight still qualifies"
    );
    dests[2].active = 11;
    assert_eq!(
        sched(SchedKind::Ovf, &dests).pick(&dests, &flow(1), 0),
        Some(0)
    );
}

#[test]
fn twos_is_weighted_and_prefers_the_less_loaded() {
    let dests = [d(1, 1), d(2, 3), d(3, 0)];
    let mut s = sched(SchedKind::Twos, &dests);
    let mut n = [0usize; 3];
    for _ in 0..4000 {
        n[s.pick(&dests, &flow(1), 0).unwrap()] += 1;
    }
    assert_eq!(n[2], 0, "weight 0 never");
    assert!(n[1] > n[0] * 2, "{n:?}");
    let mut loaded = dests;
    loaded[1].active = 100;
    let mut s = sched(SchedKind::Twos, &loaded);
    let b = (0..1000)
        .filter(|_| s.pick(&loaded, &flow(1), 0) == Some(1))
        .count();
    assert!(b < 600, "a loaded server wins only when drawn twice: {b}");
}

#[test]
fn sh_is_stable_weighted_and_falls_back_when_asked() {
    let mut dests = [d(1, 1), d(2, 3)];
    let t = sh_table(&keys(&dests));
    let share = t.buckets.iter().filter(|&&b| b == 1).count();
    assert_eq!(share, 192, "weight 3 of 4 fills 3/4 of the buckets");
    let mut s = sched(SchedKind::Sh, &dests);
    let first: Vec<_> = (0..200)
        .map(|c| s.pick(&dests, &flow(0xc613_0000 + c), 0))
        .collect();
    let again: Vec<_> = (0..200)
        .map(|c| s.pick(&dests, &flow(0xc613_0000 + c), 0))
        .collect();
    assert_eq!(first, again, "same source, same server");
    dests[1].weight = 0;
    assert!((0..200).all(|c| s.pick(&dests, &flow(0xc613_0000 + c), 0) != Some(1)));
    assert!(
        (0..200).any(|c| s.pick(&dests, &flow(0xc613_0000 + c), 0).is_none()),
        "no fallback: no pick"
    );
    let mut f = Scheduler::new(
        SchedKind::Sh,
        SchedFlags {
            sh_fallback: true,
            ..Default::default()
        },
        SchedTables::build(SchedKind::Sh, &keys(&dests)),
        &dests,
        1,
    );
    assert!(
        (0..200).all(|c| f.pick(&dests, &flow(0xc613_0000 + c), 0) == Some(0)),
        "fallback finds the live server"
    );
}

#[test]
fn sh_port_spreads_one_client_over_servers() {
    let dests = [d(1, 1), d(2, 1), d(3, 1)];
    let mut s = Scheduler::new(
        SchedKind::Sh,
        SchedFlags {
            sh_port: true,
            ..Default::default()
        },
        SchedTables::build(SchedKind::Sh, &keys(&dests)),
        &dests,
        1,
    );
    let mut seen = std::collections::HashSet::new();
    for p in 0..64 {
        let f = Flow {
            sport: 40000 + p,
            ..flow(7)
        };
        seen.insert(s.pick(&dests, &f, 0));
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn dh_maps_destinations_stably() {
    let dests = [d(1, 1), d(2, 5), d(3, 1)];
    let t = dh_table(&keys(&dests));
    assert_eq!(
        t.buckets.iter().filter(|&&b| b == 0).count(),
        86,
        "weights ignored: 256 round robin"
    );
    let mut s = sched(SchedKind::Dh, &dests);
    for c in 0..50u32 {
        let f = Flow {
            daddr: Ipv4Addr::from(0xc613_0100 + c),
            ..flow(c)
        };
        let g = Flow {
            saddr: Ipv4Addr::new(198, 18, 9, 9),
            ..f
        };
        assert_eq!(
            s.pick(&dests, &f, 0),
            s.pick(&dests, &g, 0),
            "only the destination matters"
        );
    }
}

#[test]
fn maglev_balances_within_one_percent_of_weights() {
    let dests: Vec<DestLoad> = (0..10)
        .map(|i| d(i + 1, if i < 5 { 1 } else { 2 }))
        .collect();
    let t = MaglevTable::build(&keys(&dests), maglev::DEFAULT_SIZE);
    assert_eq!(t.lookup.len(), 65537);
    let total_w: u32 = dests.iter().map(|x| x.weight).sum();
    for (i, x) in dests.iter().enumerate() {
        let got = t.lookup.iter().filter(|&&b| usize::from(b) == i).count() as f64 / 65537.0;
        let want = f64::from(x.weight) / f64::from(total_w);
        assert!(
            (got - want).abs() / want < 0.01,
            "server {i}: {got:.4} vs {want:.4}"
        );
    }
}

#[test]
fn maglev_moves_few_flows_when_a_server_goes() {
    let dests: Vec<DestLoad> = (0..10).map(|i| d(i + 1, 1)).collect();
    let k = keys(&dests);
    let before = MaglevTable::build(&k, maglev::DEFAULT_SIZE);
    // Remove server index 3.
    let mut k2 = k.clone();
    k2.remove(3);
    let after = MaglevTable::build(&k2, maglev::DEFAULT_SIZE);
    let name = |t: &MaglevTable, ks: &[ServerKey], i: usize| ks[usize::from(t.lookup[i])].addr;
    let mut moved_other = 0;
    for i in 0..65537 {
        let (a, b) = (name(&before, &k, i), name(&after, &k2, i));
        if a != k[3].addr && a != b {
            moved_other += 1;
        }
    }
    // Entries of the surviving servers that moved: Maglev keeps this small.
    let frac = f64::from(moved_other) / 65537.0;
    assert!(
        frac < 0.05,
        "{:.3} of entries of surviving servers moved",
        frac
    );
}

#[test]
fn mh_fallback_and_port() {
    let mut dests = [d(1, 1), d(2, 1)];
    let mut s = Scheduler::new(
        SchedKind::Mh,
        SchedFlags {
            mh_fallback: true,
            ..Default::default()
        },
        SchedTables::build(SchedKind::Mh, &keys(&dests)),
        &dests,
        1,
    );
    let a = s.pick(&dests, &flow(5), 0);
    assert_eq!(a, s.pick(&dests, &flow(5), 0));
    dests[a.unwrap()].weight = 0;
    assert_eq!(s.pick(&dests, &flow(5), 0), Some(1 - a.unwrap()));
}

#[test]
fn lblc_sticks_per_destination_until_overloaded() {
    let mut dests = [d(1, 2), d(2, 2)];
    let mut s = sched(SchedKind::Lblc, &dests);
    let f = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 1),
        ..flow(1)
    };
    let first = s.pick(&dests, &f, 0).unwrap();
    dests[first].active = 2; // at its weight: not overloaded
    assert_eq!(s.pick(&dests, &f, 1), Some(first));
    dests[first].active = 3; // above weight while the other is idle
    assert_eq!(s.pick(&dests, &f, 2), Some(1 - first));
    s.expire(2 + lblc::EXPIRATION_S);
    let State::Lblc(st) = &s.state else {
        unreachable!()
    };
    assert_eq!(
        st.cached(f.daddr),
        None,
        "idle for the expiration: forgotten"
    );
}

#[test]
fn lblcr_grows_the_set_when_its_members_are_overloaded() {
    let mut dests = [d(1, 2), d(2, 2), d(3, 2)];
    let mut s = sched(SchedKind::Lblcr, &dests);
    let f = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 1),
        ..flow(1)
    };
    let first = s.pick(&dests, &f, 0).unwrap();
    assert_eq!(s.pick(&dests, &f, 1), Some(first));
    dests[first].active = 5;
    let second = s.pick(&dests, &f, 2).unwrap();
    assert_ne!(second, first);
    let State::Lblcr(st) = &s.state else {
        unreachable!()
    };
    assert_eq!(st.members(f.daddr).len(), 2);
}

#[test]
fn every_scheduler_skips_unavailable_servers_and_names_round_trip() {
    // Only the third server is available: the first has weight 0, the second is
    // overloaded.
    let dests = [
        d(1, 0),
        DestLoad {
            overloaded: true,
            ..d(2, 5)
        },
        d(3, 1),
    ];
    // Flows that differ in source and destination address, so that the hashing
    // schedulers land on every server.
    let flow_of = |c: u32| Flow {
        daddr: Ipv4Addr::from(0xc613_0100 + c),
        ..flow(0xc613_0000 + c)
    };
    let sh = sh_table(&keys(&dests));
    let dh = dh_table(&keys(&dests));
    // The hashing schedulers without fallback (the kernel's semantics): the hashed server
    // when it is available, else no server at all.
    let hashed = |t: &BucketTable, a: Ipv4Addr| {
        let b = t.buckets[hashing::hash_32(u32::from(a), 8) as usize];
        (b == 2).then_some(2)
    };
    let fallback = SchedFlags {
        sh_fallback: true,
        mh_fallback: true,
        ..Default::default()
    };
    for k in SchedKind::ALL {
        assert_eq!(SchedKind::from_name(k.name()), Some(k));
        let mut plain = sched(k, &dests);
        let mut falls_back = Scheduler::new(
            k,
            fallback,
            SchedTables::build(k, &keys(&dests)),
            &dests,
            42,
        );
        let mut picked = 0;
        for c in 0..64 {
            let f = flow_of(c);
            let got = plain.pick(&dests, &f, 0);
            let with_fallback = falls_back.pick(&dests, &f, 0);
            match k {
                SchedKind::Dh => {
                    // dh has no fallback flag.
                    assert_eq!(got, hashed(&dh, f.daddr), "{k}, flow {c}");
                    assert_eq!(with_fallback, got, "{k}, flow {c}");
                }
                SchedKind::Sh => {
                    assert_eq!(got, hashed(&sh, f.saddr), "{k}, flow {c}");
                    assert_eq!(with_fallback, Some(2), "{k} with sh-fallback, flow {c}");
                }
                SchedKind::Mh => {
                    assert!(
                        got.is_none() || got == Some(2),
                        "{k} picked an unavailable server: {got:?}"
                    );
                    assert_eq!(with_fallback, Some(2), "{k} with mh-fallback, flow {c}");
                }
                _ => {
                    assert_eq!(got, Some(2), "{k} must pick the available server");
                    assert_eq!(with_fallback, Some(2), "{k} must pick the available server");
                }
            }
            picked += usize::from(got.is_some());
        }
        assert!(picked > 0, "{k} never picked the available server");
    }
    // With no server available, every scheduler picks none: fresh ones, and the ones
    // above, whose state (rr position, wrr mark, lblc caches) points at the last server.
    let none = [
        dests[0],
        dests[1],
        DestLoad {
            overloaded: true,
            ..dests[2]
        },
    ];
    for k in SchedKind::ALL {
        let mut fresh = sched(k, &none);
        let mut used = Scheduler::new(
            k,
            fallback,
            SchedTables::build(k, &keys(&dests)),
            &dests,
            42,
        );
        for c in 0..64 {
            let f = flow_of(c);
            used.pick(&dests, &f, 0);
            assert_eq!(fresh.pick(&none, &f, 1), None, "{k}, flow {c}");
            assert_eq!(used.pick(&none, &f, 1), None, "{k}, flow {c}");
        }
    }
    assert_eq!(
        SchedFlags::parse("sh-port").unwrap().names(),
        vec!["sh-port"]
    );
}

#[test]
fn lblc_entries_expire_after_their_idle_time() {
    // Three servers; A is cached at the first, B at the second, and then the load makes
    // the third wlc's choice, so an entry that is forgotten shows as a move to the third.
    let mut dests = [d(1, 4), d(2, 4), d(3, 4)];
    let a = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 1),
        ..flow(1)
    };
    let b = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 2),
        ..flow(2)
    };
    let e = lblc::EXPIRATION_S;
    let mut s = sched(SchedKind::Lblc, &dests);
    assert_eq!(s.pick(&dests, &a, 0), Some(0), "all idle: the first");
    dests[0].active = 1;
    // A use refreshes the entry: A is now idle from 100, not from 0.
    assert_eq!(
        s.pick(&dests, &a, 100),
        Some(0),
        "cached, though wlc would take another"
    );
    assert_eq!(s.pick(&dests, &b, 200), Some(1));
    dests[1].active = 1;
    let cached = |s: &Scheduler, f: &Flow| {
        let State::Lblc(st) = &s.state else {
            unreachable!()
        };
        st.cached(f.daddr)
    };
    s.expire(100 + e - 1);
    assert_eq!(
        cached(&s, &a),
        Some(1),
        "A idle one second short of the expiration"
    );
    s.expire(100 + e);
    assert_eq!(cached(&s, &a), None, "A idle for the expiration: forgotten");
    assert_eq!(cached(&s, &b), Some(2), "B idle for less: kept");
    assert_eq!(
        s.pick(&dests, &a, 100 + e),
        Some(2),
        "A is scheduled afresh (wlc)"
    );
    assert_eq!(s.pick(&dests, &b, 100 + e), Some(1), "B still sticks");
}

#[test]
fn lblcr_sets_expire_after_their_idle_time() {
    let mut dests = [d(1, 4), d(2, 4), d(3, 4)];
    let a = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 1),
        ..flow(1)
    };
    let b = Flow {
        daddr: Ipv4Addr::new(198, 19, 0, 2),
        ..flow(2)
    };
    let e = lblc::EXPIRATION_S;
    let mut s = sched(SchedKind::Lblcr, &dests);
    assert_eq!(s.pick(&dests, &a, 0), Some(0));
    dests[0].active = 1;
    assert_eq!(s.pick(&dests, &a, 100), Some(0), "the set answers");
    assert_eq!(s.pick(&dests, &b, 200), Some(1));
    dests[1].active = 1;
    let members = |s: &Scheduler, f: &Flow| {
        let State::Lblcr(st) = &s.state else {
            unreachable!()
        };
        st.members(f.daddr)
    };
    s.expire(100 + e - 1);
    assert_eq!(members(&s, &a), vec![1], "A idle one second short: kept");
    s.expire(100 + e);
    assert_eq!(members(&s, &a), Vec::<u32>::new(), "A forgotten");
    assert_eq!(members(&s, &b), vec![2], "B kept");
    assert_eq!(s.pick(&dests, &a, 100 + e), Some(2), "A scheduled afresh");
    assert_eq!(s.pick(&dests, &b, 100 + e), Some(1), "B still sticks");
}

#[test]
fn mh_port_spreads_one_client_over_servers() {
    let dests = [d(1, 1), d(2, 1), d(3, 1)];
    let mk = |mh_port| {
        Scheduler::new(
            SchedKind::Mh,
            SchedFlags {
                mh_port,
                ..Default::default()
            },
            SchedTables::build(SchedKind::Mh, &keys(&dests)),
            &dests,
            1,
        )
    };
    // One client address, 64 source ports.
    let flows: Vec<Flow> = (0..64)
        .map(|p| Flow {
            sport: 40000 + p,
            ..flow(7)
        })
        .collect();
    let picks = |s: &mut Scheduler| -> Vec<Option<usize>> {
        flows.iter().map(|f| s.pick(&dests, f, 0)).collect()
    };
    let mut with = mk(true);
    let spread = picks(&mut with);
    assert!(spread.iter().all(Option::is_some), "{spread:?}");
    let servers: std::collections::HashSet<_> = spread.iter().collect();
    assert_eq!(servers.len(), 3, "mh-port: the ports spread: {spread:?}");
    assert_eq!(picks(&mut with), spread, "the same flow, the same server");
    assert_eq!(
        picks(&mut mk(true)),
        spread,
        "and from a table built anew (another worker or director)"
    );
    let one = picks(&mut mk(false));
    assert!(one[0].is_some());
    assert!(
        one.iter().all(|p| *p == one[0]),
        "without mh-port, one client goes to one server: {one:?}"
    );
}
