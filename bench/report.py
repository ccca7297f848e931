#!/usr/bin/env python3
"""Turns bench/results/*.json into BENCHMARKS.md and bench/results/*.png.

Every number in BENCHMARKS.md comes from the JSON the benchmark drivers wrote, except the
dated, hand-written note bench/results/NOTES.md (the machine, published anchors), which is
included verbatim and says so. Run by scripts/bench.sh after the measurements.
"""
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RES = pathlib.Path(os.environ.get("RVS_BENCH_RESULTS", ROOT / "bench" / "results"))


def load(name):
    p = RES / name
    return json.loads(p.read_text()) if p.exists() else None


def plots(t):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flows = sorted({c["flows"] for c in t["cases"]})
    modes = ["dr", "tun", "nat", "fullnat"]
    # Per-core Mpps by mode, next to testpmd.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(1, len(flows))
    labels = ["testpmd io", "testpmd 5tswap"] + [f"rvs {m.upper()}" for m in modes]
    for k, f in enumerate(flows):
        vals = []
        for prog, mode in [("testpmd", "io"), ("testpmd", "5tswap")] + [("rvs", m) for m in modes]:
            c = [x for x in t["cases"] if x["program"] == prog and x["mode"] == mode and x["flows"] == f and x["workers"] == 1]
            vals.append(c[0]["mpps"] if c else 0)
        xs = [i + k * width for i in range(len(labels))]
        ax.bar(xs, vals, width, label=f"{f:,} flows")
    ax.set_xticks([i + width * (len(flows) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20)
    ax.set_ylabel("Mpps, one core (64 B)")
    ax.set_title("Per-core forwarding: rvs vs testpmd, same trace and vdevs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RES / "per_core_mpps.png", dpi=110)
    plt.close(fig)
    # ns/packet against flows.
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in modes:
        pts = sorted((c["flows"], c["ns_per_packet"]) for c in t["cases"] if c["program"] == "rvs" and c["mode"] == m and c["workers"] == 1)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m.upper())
    ax.set_xscale("log")
    ax.set_xlabel("concurrent flows")
    ax.set_ylabel("ns per packet")
    ax.set_title("Cost per packet vs number of flows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RES / "ns_per_packet_vs_flows.png", dpi=110)
    plt.close(fig)


def success(load):
    """Share of legitimate requests that completed, as a percentage string."""
    done, errors = load["requests"], load["errors"]
    return f"{100 * done / (done + errors):.1f}%" if done + errors > 0 else ""


def micro():
    """(name, median) rows from criterion's text output in results/micro.txt."""
    p = RES / "micro.txt"
    if not p.exists():
        return []
    rows, name = [], None
    for line in p.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith(("Benchmarking", "Found", "Gnuplot", "WARNING")):
            name = line.split()[0]
        if "time:" in line and name and "[" in line:
            v = line[line.index("[") + 1 : line.index("]")].split()
            rows.append((name, f"{v[2]} {v[3]}"))
            name = None
    return rows


def e2e_plot(e):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = e["targets"]
    direct = next(t for t in ts if t["name"] == "direct")
    names = [t["name"] for t in ts]
    fig, ax = plt.subplots(figsize=(8, 4))
    kinds = [("keepalive", "keep-alive"), ("fresh", "fresh connections"), ("fresh_under_synflood", "fresh, under SYN flood")]
    width = 0.8 / len(kinds)
    for k, (key, label) in enumerate(kinds):
        base = direct["fresh" if key == "fresh_under_synflood" else key]["requests_per_s"]
        vals = [(t[key]["requests_per_s"] / base) if t.get(key) else 0 for t in ts]
        ax.bar([i + k * width for i in range(len(ts))], vals, width, label=label)
    ax.set_xticks([i + width for i in range(len(ts))])
    ax.set_xticklabels(names)
    ax.set_ylabel("requests/s as a ratio to direct")
    ax.set_title("HTTP through each load balancer (same topology)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RES / "e2e.png", dpi=110)
    plt.close(fig)


def e2e_verdict(e, kind, E2E_RVS):
    """'met' when rvs beats nftables and HAProxy in every round, 'missed' when it
    loses to one of them in every round, otherwise 'tie within noise': a difference the
    rounds do not agree on is smaller than their spread."""
    rounds = e.get("every_round")
    if not rounds:
        return "not judged (rounds not recorded)"
    if len(rounds) < 3:
        return f"not judged ({len(rounds)} round(s); a verdict needs at least 3)"
    wins, losses = 0, 0
    for r in rounds:
        by = {x["name"]: x[kind]["requests_per_s"] for x in r}
        if not all(k in by for k in (E2E_RVS, "nftables", "haproxy")):
            return "not judged (a target is missing from a round)"
        a, n, h = by[E2E_RVS], by["nftables"], by["haproxy"]
        if a > n and a > h:
            wins += 1
        else:
            losses += 1
    if losses == 0:
        return f"met ({wins} of {wins} rounds)"
    if wins == 0:
        return f"missed ({losses} of {losses} rounds)"
    return f"tie within noise ({wins} of {wins + losses} rounds)"


def verdict(values, ok):
    """'met' when every value passes, 'missed' when none does, otherwise a tie: a
    difference the runs do not agree on is smaller than their spread."""
    passed = sum(1 for v in values if ok(v))
    if not values:
        return "not judged (no runs)"
    if passed == len(values):
        return f"met ({passed} of {len(values)} runs)"
    if passed == 0:
        return f"missed ({len(values)} of {len(values)} runs)"
    return f"tie within noise ({passed} of {len(values)} runs)"


def machine_line(m):
    return f"{m['cpu']} ({m['cores']} cores seen), {m['memory_gib']} GiB, kernel {m['kernel']}, DPDK {m['dpdk']}"


def main():
    t = load("throughput.json")
    if t is None:
        sys.exit("no bench/results/throughput.json: run scripts/bench.sh first")
    if "setup" not in t:
        sys.exit("bench/results/throughput.json predates the current benchmark: run scripts/bench.sh")
    targets = json.loads((ROOT / "bench" / "targets.json").read_text())
    m = t["machine"]
    out = []
    w = out.append
    w("# rvs benchmarks\n")
    w("Generated by `bench/report.py` from `bench/results/*.json`, whose drivers also wrote every description of a set-up below, the targets from `bench/targets.json` and the dated, hand-written notes `bench/results/NOTES*.md`; reproduce everything with `bash scripts/bench.sh` (as root, on a fresh clone).\n")
    w("## The machine\n")
    w(f"- {machine_line(m)}\n")
    notes = RES / "NOTES.md"
    if notes.exists():
        text = notes.read_text()
        w(text[text.index("-->") + 3:].strip() + "\n")
    other = lambda j: j and j.get("machine") and j["machine"]["cpu"] != m["cpu"]
    w("## Per-core throughput (64-byte frames)\n")
    w(t["setup"] + " " + t["mix"] + "\n")
    w("| program | mode | flows | workers | Mpps (median) | ns/packet | every run, Mpps | vs testpmd 5tswap, every pair | median ratio | dropped | note |")
    w("|---|---|---:|---:|---:|---:|---|---|---:|---:|---|")
    for c in t["cases"]:
        r = f"{c['ratio_to_5tswap']:.2f}" if c.get("ratio_to_5tswap") is not None else ""
        pairs = ", ".join(f"{x:.2f}" for x in c.get("pair_ratios", []))
        runs = ", ".join(f"{x:.2f}" for x in c.get("runs_mpps", []))
        d = f"{c['dropped_pct']:.1f}%" if c["program"] == "rvs" else ""
        w(f"| {c['program']} | {c['mode']} | {c['flows']:,} | {c['workers']} | {c['mpps']:.2f} | {c['ns_per_packet']:.1f} | {runs} | {pairs} | {r} | {d} | {c['note']} |")
    w("")
    w("### Connection setup\n")
    w(t["lifecycle_setup"] + "\n")
    w("| mode | connections/s (median) | every run | clock, connections/s | connections in the table (start, end) |")
    w("|---|---:|---|---:|---|")
    for c in t["lifecycle"]:
        a, b = c["table_connections"]
        w(f"| {c['mode']} | {c['connections_per_s']:,.0f} | {', '.join(f'{r:,.0f}' for r in c['runs'])} | {c['clock_conns_per_s']:,} | {a:,}, {b:,} |")
    w("")
    w(f"{t['syn_only_setup']} **{t['syn_only_inserts_per_s']:,.0f} per second.**\n")
    w("Reproduce this section alone: `cargo build --release -p rvs -p rvs-bench && target/release/rvs-bench throughput` (`target/release/rvs-bench case dr 1000` for one pair).\n")
    w("![per-core Mpps](bench/results/per_core_mpps.png)\n")
    w("![ns per packet vs flows](bench/results/ns_per_packet_vs_flows.png)\n")
    e = load("e2e.json")
    if e and "setup" not in e:
        e = None  # results of an older driver, without their set-up: not shown
    if e:
        ts = e["targets"]
        direct = next((x for x in ts if x["name"] == "direct"), None)
        w("## End to end, side by side (HTTP through each load balancer)\n")
        if other(e):
            w(f"Measured on {machine_line(e['machine'])}.\n")
        w(e["setup"] + f" {e['seconds_per_load']} s per load; every figure is the median of {e['rounds']} rounds, in these orders: " + "; ".join(", ".join(o) for o in e["orders"]) + f". Flood target: {e['flood_pps_target']:,} SYN/s.\n")
        tol = targets["flood_tolerance"]
        w("| target | keep-alive req/s | vs direct | p50 / p99 ms | fresh req/s | vs direct | p50 / p99 ms | under flood req/s | p99 ms | legit success | flood landed pps |")
        w("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")
        for tg in ts:
            k, f, fl = tg["keepalive"], tg["fresh"], tg.get("fresh_under_synflood")
            rk = f"{k['requests_per_s'] / direct['keepalive']['requests_per_s']:.2f}" if direct else ""
            rf = f"{f['requests_per_s'] / direct['fresh']['requests_per_s']:.2f}" if direct else ""
            off = ""
            if fl and abs(tg["flood_pps"] / e["flood_pps_target"] - 1) > tol:
                off = " (off target)"
            fl_s = f"{fl['requests_per_s']:,.0f} | {fl['p99_ms']:.2f} | {success(fl)} | {tg['flood_pps']:,.0f}{off}" if fl else " |  |  | "
            w(f"| {tg['name']} | {k['requests_per_s']:,.0f} | {rk} | {k['p50_ms']:.2f} / {k['p99_ms']:.2f} | {f['requests_per_s']:,.0f} | {rf} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | {fl_s} |")
        w("")
        w("Legit success: completed requests / (completed + wrk's socket errors and non-2xx answers) during the flood. Every round's figures are in `bench/results/e2e.json`.\n")
        w("Reproduce this section alone: `target/release/rvs-bench e2e` (`--only nftables,af_xdp` for some targets).\n")
        w("![end to end](bench/results/e2e.png)\n")
    k = load("kernel.json")
    if k:
        w("## The kernel exception path (iperf3)\n")
        w(k["setup"] + "\n")
        paths = [r["path"] for r in k["every_round"][0]]
        med = lambda xs: sorted(xs)[len(xs) // 2]
        rows_k = {p: [x for rnd in k["every_round"] for x in rnd if x["path"] == p] for p in paths}
        base = rows_k.get("kernel", [])
        w("| path | to the director Gbit/s (median) | vs kernel, every round | from the director Gbit/s (median) | vs kernel, every round |")
        w("|---|---:|---|---:|---|")
        for p in paths:
            xs = rows_k[p]
            ratios = lambda key: ", ".join(f"{x[key] / b[key]:.2f}" for x, b in zip(xs, base)) if base else ""
            w(f"| {p} | {med([x['to_director_gbps'] for x in xs]):.2f} | {ratios('to_director_gbps')} | {med([x['from_director_gbps'] for x in xs]):.2f} | {ratios('from_director_gbps')} |")
        w("")
        ctx = RES / "NOTES-kernel.md"
        if ctx.exists():
            text = ctx.read_text()
            w(text[text.index("-->") + 3:].strip() + "\n")
        w("Reproduce this section alone: `target/release/rvs-bench kernel`.\n")
    hc = load("health.json")
    if hc:
        h = hc["health"]
        w("## Health checks at scale\n")
        if other(hc):
            w(f"Measured on {machine_line(hc['machine'])}.\n")
        w(h["setup"] + "\n")
        if "control_plane_cpu" in h:
            w("| real servers | probes configured per second | achieved per second | farm's accepts per second | twin packets per probe | servers up | health thread, share of a core | main thread | whole control plane | window s |")
            w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            w(f"| {h['servers']:,} | {h['probes_per_s_expected']:,.0f} | {h['probes_per_s']:,.0f} | {h['farm_accepts_per_s']:,.0f} | {h['twin_packets_per_probe']} | {h['servers_up']:,} | {h['health_thread_cpu']:.1%} | {h['main_thread_cpu']:.1%} | {h['control_plane_cpu']:.1%} | {h['seconds']} |")
        else:
            w("| real servers | probes configured per second | achieved per second | servers up | health thread, share of a core | main thread, share of a core | window s |")
            w("|---:|---:|---:|---:|---:|---:|---:|")
            w(f"| {h['servers']:,} | {h['probes_per_s_expected']:,.0f} | {h['probes_per_s']:,.0f} | {h['servers_up']:,} | {h['health_thread_cpu']:.1%} | {h['main_thread_cpu']:.1%} | {h['seconds']} |")
        w("")
        w("Reproduce this section alone: `target/release/rvs-bench health`.\n")
    fo = load("failover.json")
    if fo:
        w("## Failover: kill -9 of the VRRP master\n")
        if other(fo):
            w(f"Measured on {machine_line(fo['machine'])}.\n")
        w(fo["setup"] + "\n")
        w("| VRRP | target | takeover s, every round | established connections lost | fresh connections failed after takeover |")
        w("|---|---|---|---|---|")
        rows_f = fo["every_round"]
        settings = sorted({(x["version"], x["advert_int"]) for x in rows_f})
        for v, a in settings:
            for target in ("rvs", "keepalived"):
                xs = [x for x in rows_f if x["version"] == v and x["advert_int"] == a and x["target"] == target]
                tk = ", ".join(f"{x['takeover_s']:.3f}" for x in xs)
                lost = ", ".join(f"{x['established_lost']} of {x['established_held']}" for x in xs) if target == "rvs" else "not measured (no service on the kernel VIP)"
                fresh = ", ".join(f"{x['fresh_failed_after']} of {x['fresh_tried_after']}" for x in xs) if target == "rvs" else "-"
                w(f"| v{v}, advert_int {a} s | {target} | {tk} | {lost} | {fresh} |")
        w("")
        w("| target (from the issue) | verdict |")
        w("|---|---|")
        for v, a in settings:
            r = [x for x in rows_f if x["version"] == v and x["advert_int"] == a and x["target"] == "rvs"]
            k = [x for x in rows_f if x["version"] == v and x["advert_int"] == a and x["target"] == "keepalived"]
            pairs = list(zip(r, k))
            w(f"| v{v} {a} s: takeover no slower than keepalived's, same run | {verdict(pairs, lambda p: p[0]['takeover_s'] <= p[1]['takeover_s'])} |")
            w(f"| v{v} {a} s: zero established connections lost | {verdict(r, lambda x: x['established_lost'] == 0)} |")
            w(f"| v{v} {a} s: zero failed new connections after the takeover | {verdict(r, lambda x: x['fresh_failed_after'] == 0)} |")
        w("")
        w("Reproduce this section alone: `target/release/rvs-bench failover`.\n")
    rows_m = micro()
    if rows_m:
        w("## Micro-benchmarks (criterion, median)\n")
        w("| benchmark | time |")
        w("|---|---:|")
        for n, v in rows_m:
            w(f"| `{n}` | {v} |")
        w("")
        w("Reproduce: `cargo bench -p rvs-bench --bench micro`.")
        w("")
    w("## Targets\n")
    w("From `bench/targets.json`. A verdict is 'met' when every run (or pair, or round) passes, 'missed' when none does, otherwise a tie within noise.\n")
    get = lambda prog, mode, flows, workers=1: next((c for c in t["cases"] if c["program"] == prog and c["mode"] == mode and c["flows"] == flows and c["workers"] == workers), None)
    rows = []
    for mode, target in targets["ratio_to_5tswap"].items():
        c = get("rvs", mode, 1000)
        if c and c.get("pair_ratios"):
            v = verdict(c["pair_ratios"], lambda x: x >= target) if c["dropped_pct"] == 0 else f"not judged (dropped {c['dropped_pct']}%)"
            rows.append((f"{mode.upper()} ≥ {target:.0%} of testpmd 5tswap per core, 1k flows", ", ".join(f"{x:.2f}" for x in c["pair_ratios"]), v))
    lim = targets["flows_1m_vs_1k"]
    for mode in ["dr", "tun", "nat", "fullnat"]:
        a, b = get("rvs", mode, 1000), get("rvs", mode, 1_000_000)
        if a and b and a.get("ratio_to_5tswap") and b.get("pair_ratios"):
            # Each 1M pair's ratio to 5tswap against the 1k row's median ratio: both
            # are paired, so the machine's drift between them cancels.
            rel = [x / a["ratio_to_5tswap"] for x in b["pair_ratios"]]
            rows.append((f"{mode.upper()} with 1M flows ≥ {lim:.0%} of the 1k-flow rate (same mix, paired ratios)", ", ".join(f"{x:.0%}" for x in rel), verdict(rel, lambda x: x >= lim)))
    if e:
        by = {tg["name"]: tg for tg in e["targets"]}
        rv = by.get(targets["e2e_rvs"])
        if rv and "nftables" in by and "haproxy" in by:
            for kind in ["keepalive", "fresh"]:
                a, n, h = rv[kind]["requests_per_s"], by["nftables"][kind]["requests_per_s"], by["haproxy"][kind]["requests_per_s"]
                rows.append((f"e2e {kind}: {rv['name']} ≥ nftables DNAT and > HAProxy (req/s, median)", f"{a:,.0f} vs {n:,.0f} and {h:,.0f}", e2e_verdict(e, kind, targets["e2e_rvs"])))
    for c in t["lifecycle"]:
        if c["mode"] == "fullnat":
            rows.append(("new connections per worker (full connections, FULLNAT)", f"{c['connections_per_s'] / 1e6:.2f} M/s", "not judged (no same-run baseline: the worker loop without DPDK I/O)"))
    b = t["bytes_per_connection"]
    rows.append((f"≤ {targets['bytes_per_connection']} bytes per tracked connection, indexes included", f"{b} B", "met" if b <= targets["bytes_per_connection"] else "missed"))
    w("| target | measured | |")
    w("|---|---|---|")
    for r in rows:
        w(f"| {r[0]} | {r[1]} | {r[2]} |")
    w("")
    ins = load("instructions.json")
    if ins and "setup" in ins:
        w("## rvs's own cost\n")
        if other(ins):
            w(f"Measured on {machine_line(ins['machine'])}.\n")
        w(ins["setup"] + " These counts do not move with the machine's noise.\n")
        per, conn = ins["instructions_per_packet"], ins.get("instructions_per_connection", {})
        w("| mode | instructions per packet | instructions per full connection |")
        w("|---|---:|---:|")
        for mode, n in per.items():
            cn = f"{conn[mode]:,.0f}" if mode in conn else ""
            w(f"| {mode} | {n:.0f} | {cn} |")
        w("")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out))
    try:
        plots(t)
        if e:
            e2e_plot(e)
    except ImportError:
        print("matplotlib missing: pip install matplotlib for the plots", file=sys.stderr)
    print("wrote BENCHMARKS.md and bench/results/*.png")


if __name__ == "__main__":
    main()
