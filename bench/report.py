#!/usr/bin/env python3
"""Turns bench/results/*.json into BENCHMARKS.md and bench/results/*.png.

Every number in BENCHMARKS.md comes from the JSON the benchmark drivers wrote, except the
dated, hand-written note bench/results/NOTES.md (the machine, published anchors), which is
included verbatim and says so. Run by scripts/bench.sh after the measurements.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RES = ROOT / "bench" / "results"


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


def success(load, seconds):
    """Share of legitimate requests that completed, as a percentage string."""
    done = load["requests"] if load.get("requests") else load["requests_per_s"] * seconds
    errors = load.get("errors", 0)
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


# The rvs target the e2e verdicts compare, chosen before any run.
E2E_RVS = "rvs (af_packet)"


def e2e_verdict(e, kind):
    """'met' when rvs beats nftables (>=) and HAProxy (>) in every round, 'missed' when it
    loses to one of them in every round, otherwise 'tie within noise': a difference the
    rounds do not agree on is smaller than their spread."""
    rounds = e.get("every_round")
    if not rounds:
        return "not judged (rounds not recorded)"
    if len(rounds) < 3:
        return f"not judged ({len(rounds)} round(s); a verdict needs at least 3)"
    wins, losses = 0, 0
    for r in rounds:
        by = {t["name"]: t[kind]["requests_per_s"] for t in r}
        if not all(k in by for k in (E2E_RVS, "nftables", "haproxy")):
            return "not judged (a target is missing from a round)"
        a, n, h = by[E2E_RVS], by["nftables"], by["haproxy"]
        if a >= n and a > h:
            wins += 1
        else:
            losses += 1
    if losses == 0:
        return f"met ({wins} of {wins} rounds)"
    if wins == 0:
        return f"missed ({losses} of {losses} rounds)"
    return f"tie within noise ({wins} of {wins + losses} rounds)"


def main():
    t = load("throughput.json")
    if t is None:
        sys.exit("no bench/results/throughput.json: run scripts/bench.sh first")
    m = t["machine"]
    out = []
    w = out.append
    w("# rvs benchmarks\n")
    w("Generated by `bench/report.py` from `bench/results/*.json` (and the dated, hand-written `bench/results/NOTES.md`); reproduce everything with\n")
    w("`bash scripts/bench.sh` (as root, on a fresh clone).\n")
    w("## The machine\n")
    w(f"- CPU: {m['cpu']} ({m['cores']} cores seen), {m['memory_gib']} GiB")
    w(f"- Kernel {m['kernel']}, DPDK {m['dpdk']}\n")
    # Prose about the machine and published figures: a dated, hand-written note.
    notes = RES / "NOTES.md"
    if notes.exists():
        text = notes.read_text()
        w(text[text.index("-->") + 3:].strip() + "\n")
    w("## Per-core throughput (64-byte frames)\n")
    w("| program | mode | flows | workers | Mpps | ns/packet | vs testpmd 5tswap | note |")
    w("|---|---|---:|---:|---:|---:|---:|---|")
    for c in t["cases"]:
        r = f"{c['ratio_to_5tswap']:.2f}" if c.get("ratio_to_5tswap") is not None else ""
        w(f"| {c['program']} | {c['mode']} | {c['flows']:,} | {c['workers']} | {c['mpps']:.2f} | {c['ns_per_packet']:.1f} | {r} | {c['note']} |")
    w("")
    one = next((c for c in t["cases"] if c["program"] == "rvs" and c["mode"] == "dr" and c["workers"] == 1 and c["flows"] == 1000), None)
    two = next((c for c in t["cases"] if c["program"] == "rvs" and c["mode"] == "dr" and c["workers"] == 2), None)
    if one and two and one["mpps"] > 0:
        w(f"Two workers (DR, 1k flows): {two['mpps']:.2f} Mpps = **{two['mpps'] / one['mpps']:.2f}×** one worker. Both workers and testpmd's")
        w(f"replay share this machine's {m['cores']} cores with the main thread, and without RSS every worker reads the")
        w("whole trace and hands half of it to the other through the redirect rings.\n")
    w("Every row replays the same mix: 64-byte data segments of established connections, opened beforehand by a warm-up port that replays one SYN per flow (its connection count is checked before the window opens).\n")
    if t.get("lifecycle"):
        w("### Connection setup\n")
        w(f"Full connections through one worker's own loop (`WorkerCore::poll` fed from memory, no DPDK I/O): per connection a SYN, an ACK, a data segment and a FIN from a client endpoint never used before, 8 connections at each step in every burst of 32. Connections are scheduled, tracked and (FULLNAT) given a local port; the rig's clock runs at {t['lifecycle_conns_per_clock_s']:,} connections per second, so with the kernel's timeouts the table stays at the size below and expires as many connections as it opens. Each run checks that every SYN created a connection and every frame was forwarded.\n")
        w("| mode | connections/s (median) | every run | connections in the table |")
        w("|---|---:|---|---:|")
        for c in t["lifecycle"]:
            w(f"| {c['mode']} | {c['connections_per_s']:,.0f} | {', '.join(f'{r:,.0f}' for r in c['runs'])} | {c['table_connections']:,} |")
        w("")
    if t.get("syn_only_inserts_per_s"):
        w(f"SYN-only insert rate, for comparison: **{t['syn_only_inserts_per_s']:,.0f} per second** on one worker on DPDK (a replayed trace of {t['syn_only_flows']:,} unique SYNs into an empty table; DR; no handshake, no expiry).\n")
    w("Reproduce this section alone: `cargo build --release -p rvs -p rvs-bench && target/release/rvs-bench throughput`")
    w("(`target/release/rvs-bench case dr 1000` for one row).\n")
    w("![per-core Mpps](bench/results/per_core_mpps.png)\n")
    w("![ns per packet vs flows](bench/results/ns_per_packet_vs_flows.png)\n")
    e = load("e2e.json")
    if e:
        ts = e["targets"]
        direct = next((t for t in ts if t["name"] == "direct"), None)
        w("## End to end, side by side (HTTP through each load balancer)\n")
        w(f"Same client, real servers and namespaces; wrk ({e['wrk']}, {e['seconds_per_load']} s per load); every figure is the median of {e.get('rounds', 1)} rounds, each round measuring every target in turn" + (", each round starting one target further down the list" if e.get("rotated") else "") + f". Fresh = `Connection: close`, a new TCP connection per request. Under flood: the fresh load while an attacker namespace sends {e['flood_pps_target']:,} SYN/s from random sources in 198.19.0.0/16 at the VIP. " + ("The flood column is the rate offered to the load balancer: an nftables counter at the egress of the bridge port toward it (every frame its interface was handed; what the target then dropped is not subtracted), the same for every target; every fresh load opened a connection per request (checked before it was recorded).\n" if "every_round" in e else "(These results predate the landed-flood counter and the fresh-load check: the flood column is the attacker's send rate, and the fresh loads reused connections.)\n"))
        flood_col = "flood landed pps" if "every_round" in e else "flood sent pps"
        w(f"| target | keep-alive req/s | vs direct | p50 / p99 ms | fresh req/s | vs direct | p50 / p99 ms | under flood req/s | p99 ms | legit success | {flood_col} |")
        w("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")
        for tg in ts:
            k, f, fl = tg["keepalive"], tg["fresh"], tg.get("fresh_under_synflood")
            rk = f"{k['requests_per_s'] / direct['keepalive']['requests_per_s']:.2f}" if direct else ""
            rf = f"{f['requests_per_s'] / direct['fresh']['requests_per_s']:.2f}" if direct else ""
            fl_s = f"{fl['requests_per_s']:,.0f} | {fl['p99_ms']:.2f} | {success(fl, e['seconds_per_load'])} | {tg['flood_pps']:,.0f}" if fl else " |  |  | "
            w(f"| {tg['name']} | {k['requests_per_s']:,.0f} | {rk} | {k['p50_ms']:.2f} / {k['p99_ms']:.2f} | {f['requests_per_s']:,.0f} | {rf} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | {fl_s} |")
        w("")
        w("Legit success: completed requests / (completed + wrk's socket errors and non-2xx answers) during the flood.\n")
        w("Reproduce this section alone: `target/release/rvs-bench e2e` (`--only nftables,af_xdp` for some targets).\n")
        w("![end to end](bench/results/e2e.png)\n")
    k = load("kernel.json")
    if k:
        w("## The kernel exception path (iperf3)\n")
        w(f"{k['tool']}, {k['seconds']} s per direction, {len(k['every_round'])} rounds alternating which path goes first: a client and a server on the director's kernel, through rvs's kernel twin (net_af_packet port, net_tap twin, 1 worker) and, as the same-run baseline, with the director's kernel owning the interface itself. Each rvs run checks that its bytes crossed the twin (its to_kernel/from_kernel counters).\n")
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
    rows_m = micro()
    if rows_m:
        w("## Micro-benchmarks (criterion, median)\n")
        w("| benchmark | time |")
        w("|---|---:|")
        for n, v in rows_m:
            # The whole-path benchmarks time one rx burst.
            per = " per burst of 32" if n.startswith("worker_path") else ""
            w(f"| `{n}` | {v}{per} |")
        w("")
        w("Reproduce: `cargo bench -p rvs-bench --bench micro`.")
        w("")
    w("## Targets\n")
    get = lambda prog, mode, flows, workers=1: next((c for c in t["cases"] if c["program"] == prog and c["mode"] == mode and c["flows"] == flows and c["workers"] == workers), None)
    rows = []
    for mode, target in [("dr", 0.50), ("nat", 0.33), ("fullnat", 0.33)]:
        c = get("rvs", mode, 1000)
        if c and c.get("ratio_to_5tswap") is not None:
            rows.append((f"{mode.upper()} ≥ {target:.0%} of testpmd 5tswap per core", f"{c['ratio_to_5tswap']:.0%}", "met" if c["ratio_to_5tswap"] >= target else "missed"))
    for mode in ["dr", "nat", "fullnat", "tun"]:
        a, b = get("rvs", mode, 1000), get("rvs", mode, 1_000_000)
        if a and b and a["mpps"] > 0:
            ratio = b["mpps"] / a["mpps"]
            rows.append((f"{mode.upper()} with 1M flows ≥ 70% of the 1k-flow rate (same mix)", f"{ratio:.0%}", "met" if ratio >= 0.7 else "missed"))
    if e:
        by = {tg["name"]: tg for tg in e["targets"]}
        # The rvs variant is fixed in advance, not picked after the fact.
        rv = by.get(E2E_RVS)
        if rv and "nftables" in by and "haproxy" in by:
            for kind in ["keepalive", "fresh"]:
                a, n, h = rv[kind]["requests_per_s"], by["nftables"][kind]["requests_per_s"], by["haproxy"][kind]["requests_per_s"]
                verdict = e2e_verdict(e, kind)
                rows.append((f"e2e {kind}: {rv['name']} ≥ nftables DNAT and > HAProxy (req/s)", f"{a:,.0f} vs {n:,.0f} and {h:,.0f}", verdict))
    for c in t.get("lifecycle", []):
        if c["mode"] != "fullnat":
            continue
        above = sum(r >= 1e6 for r in c["runs"])
        verdict = "met" if above == len(c["runs"]) else "missed" if above == 0 else f"tie within noise ({above} of {len(c['runs'])} runs)"
        rows.append(("new connections ≥ 1 M/s per worker (full connections, FULLNAT, worker loop without DPDK I/O)", f"{c['connections_per_s'] / 1e6:.2f} M/s", verdict))
    if t.get("bytes_per_connection"):
        b = t["bytes_per_connection"]
        rows.append(("≤ 128 bytes per tracked connection, indexes included", f"{b} B", "met" if b <= 128 else "missed"))
    w("| target | measured | |")
    w("|---|---|---|")
    for r in rows:
        w(f"| {r[0]} | {r[1]} | {r[2]} |")
    w("")
    w("## rvs's own cost\n")
    w("rvs's own cost per packet without DPDK is the `worker_path_1k_flows` micro-benchmark above;")
    w("its instructions per packet, counted by callgrind (`rvs-bench instructions`) on the workers' own")
    w("loop (`WorkerCore::poll`, as rvsd runs it, fed from memory), do not move with the noise:\n")
    ins = RES / "instructions.json"
    if ins.exists():
        j = json.loads(ins.read_text())
        per, conn = j["instructions_per_packet"], j.get("instructions_per_connection", {})
        w("| mode | instructions per packet (data segment, 1k connections) | instructions per full connection (SYN, ACK, data, FIN, expiry) |")
        w("|---|---:|---:|")
        for mode, n in per.items():
            c = f"{conn[mode]:,.0f}" if mode in conn else ""
            w(f"| {mode} | {n:.0f} | {c} |")
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
