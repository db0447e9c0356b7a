#!/usr/bin/env python3
"""reports/cluster.md from the raw results of ci/bench-cluster.sh.

  bench_cluster_report.py RAW_DIR --out reports/cluster.md

RAW_DIR is what ci/bench_cluster.py wrote (meta.json, runs/, convergence/,
loadgen/). Every figure is computed here from loadgen's result JSON and the
/proc samples; ci/bench_cluster.py imports the same functions for the
verdicts of its throughput search.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

P99_MAX_MS = 10.0
ACHIEVED_MIN = 0.95
OTHERS_MAX_PCT = 10.0
LABEL = {"broker": "broker (this repository)", "rmqtt": "RMQTT (rmqttd)"}


def seconds(text):
    text = str(text).strip()
    for unit, f in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    return float(text)


def load(raw, rel):
    if not rel:
        return None
    try:
        with open(Path(raw) / rel) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---- CPU samples ------------------------------------------------------------------------

def window_delta(cpu, t0, t1):
    """(first, last) samples inside [t0, t1] (None when fewer than two, or under a second apart)."""
    if not cpu:
        return None
    inside = [s for s in cpu["samples"] if t0 <= s["t"] <= t1]
    if len(inside) < 2 or inside[-1]["t"] - inside[0]["t"] < 1.0:
        return None
    return inside[0], inside[-1]


def cpu_over(cpu, t0, t1):
    """Over [t0, t1]: CPU seconds of each sampled process, and in percent of one core
    each process, each core's busy time and other processes' user time."""
    w = window_delta(cpu, t0, t1)
    if w is None:
        return None
    a, z = w
    tck = cpu["clk_tck"]
    wall = z["t"] - a["t"]
    procs = {}
    user_tracked = 0
    for name, (u1, s1) in z["proc"].items():
        u0, s0 = a["proc"].get(name, (0, 0))  # started inside the window: all its time is
        procs[name] = ((u1 - u0) + (s1 - s0)) / tck
        user_tracked += u1 - u0
    cores = {}
    user_all = 0
    for k, (b1, t1_, us1) in z["cpu"].items():
        b0, t0_, us0 = a["cpu"].get(k, (b1, t1_, us1))
        cores[k] = (b1 - b0) * 100.0 / max(t1_ - t0_, 1)
        user_all += us1 - us0
    return {
        "wall_s": wall,
        "cpu_s": procs,
        "pct": {name: v / wall * 100.0 for name, v in procs.items()},
        "core_busy_pct": cores,
        "others_pct": max(user_all - user_tracked, 0) / tck / wall * 100.0,
    }


# ---- point-to-point ----------------------------------------------------------------------

def p2p_metrics(rec, raw):
    """The figures of one point-to-point run, or None when it did not produce results."""
    if rec.get("outcome") != "ok":
        return None
    sub, pub = load(raw, rec.get("sub_json")), load(raw, rec.get("pub_json"))
    if not sub or not pub:
        return None
    phases = pub["phases"]
    pi = next((i for i, p in enumerate(phases) if p["kind"] == "publish"), None)
    if pi is None:
        return None
    pp = phases[pi]
    drain = phases[pi + 1] if pi + 1 < len(phases) and phases[pi + 1]["kind"] == "hold" else pp
    t0 = pub["started_at_unix"] + pp["started_s"]
    t_pub = pub["started_at_unix"] + pp["ended_s"]
    t_drain = pub["started_at_unix"] + drain["ended_s"]
    sent, acked = pub["totals"]["pub_sent"], pub["totals"]["pub_acked"]
    st = sub["totals"]
    received = st["received"]
    lat = sub["latency"]
    publish_s = max(pp["ended_s"] - pp["started_s"], 1e-9)
    m = {
        "target": pp["target_rate"], "achieved": pp["achieved_rate"], "sent": sent, "acked": acked,
        "overruns": pub["totals"]["pub_overruns"], "received": received,
        "received_rate": received / publish_s, "delivered": received / sent if sent else 0.0,
        "lost": st["lost"], "duplicates": st["duplicates"], "out_of_order": st["out_of_order"],
        "connects_failed": st["connects_failed"] + pub["totals"]["connects_failed"],
        "p50_ms": lat["p50_us"] / 1000, "p99_ms": lat["p99_us"] / 1000, "p999_ms": lat["p999_us"] / 1000,
        "max_ms": lat["max_us"] / 1000, "latency_count": lat["count"],
    }
    nodes = sorted(rec.get("node_pids", {}), key=lambda x: int(x[1:]))
    busy = cpu_over(rec.get("cpu"), t0, t_pub)
    whole = cpu_over(rec.get("cpu"), t0, t_drain)
    if busy:
        m["node_pct"] = [busy["pct"].get(n) for n in nodes]
        m["nodes_pct"] = sum(v for v in m["node_pct"] if v is not None)
        m["loadgen_pct"] = sum(v for k, v in busy["pct"].items() if k.startswith("loadgen"))
        m["core0_pct"] = busy["core_busy_pct"].get("0")
        m["core1_pct"] = busy["core_busy_pct"].get("1")
        m["others_pct"] = busy["others_pct"]
    if whole and received:
        cpu_s = sum(whole["cpu_s"].get(n, 0.0) for n in nodes)
        m["nodes_cpu_s"] = cpu_s
        m["cpu_s_per_M"] = cpu_s / received * 1e6
    cc = rec.get("cluster_counters")
    if cc:
        m["forwarded"] = sum(c.get("forwarded", 0) for c in cc.values())
        m["forwards_received"] = sum(c.get("forwards_received", 0) for c in cc.values())
        m["forwards_dropped"] = sum(c.get("forwards_dropped", 0) for c in cc.values())
    return m


def verdict(rec, raw):
    """A throughput-search step: pass, or fail with the reasons; marginal: near the
    bounds (worth a second run, as one stall of the machine can cause it)."""
    m = p2p_metrics(rec, raw)
    if m is None:
        return {"pass": False, "reasons": [f"{rec.get('outcome')}: {rec.get('note', '')}"], "marginal": False}
    reasons = []
    if m["connects_failed"]:
        reasons.append(f"{m['connects_failed']} connects failed")
    if m["achieved"] < ACHIEVED_MIN * m["target"]:
        reasons.append(f"published {m['achieved']:,.0f}/s < 95% of {m['target']:,.0f}/s")
    if m["sent"] and m["received"] < ACHIEVED_MIN * m["sent"]:
        reasons.append(f"received {m['received']:,} < 95% of {m['sent']:,} sent")
    if m["received"] == 0:
        reasons.append("nothing received")
    elif m["p99_ms"] > P99_MAX_MS:
        reasons.append(f"p99 {m['p99_ms']:.1f} ms > {P99_MAX_MS:g} ms")
    marginal = bool(reasons) and not m["connects_failed"] and m["p99_ms"] <= 5 * P99_MAX_MS \
        and m["achieved"] >= 0.9 * m["target"] and (not m["sent"] or m["received"] >= 0.9 * m["sent"])
    return dict(m, **{"pass": not reasons, "reasons": reasons, "marginal": marginal})


def one_line(m):
    parts = [f"recv {m['received_rate']:,.0f} msg/s (published {m['achieved']:,.0f} of {m['target']:,.0f})",
             f"delivered {m['delivered'] * 100:.2f}%", f"p50 {m['p50_ms']:.2f} p99 {m['p99_ms']:.2f} ms"]
    if "cpu_s_per_M" in m:
        parts.append(f"{m['cpu_s_per_M']:.1f} CPU s/M msgs")
    if m.get("core0_pct") is not None:
        parts.append(f"nodes' core {m['core0_pct']:.0f}% busy")
    return ", ".join(parts)


# ---- convergence -------------------------------------------------------------------------

def subscribe_window(j):
    """(start, end) of the subscribe phases of a loadgen result, in Unix seconds."""
    if not j:
        return None
    subs = [p for p in j["phases"] if p["kind"] == "subscribe"]
    if not subs:
        return None
    return j["started_at_unix"] + subs[0]["started_s"], j["started_at_unix"] + subs[-1]["ended_s"]


def convergence_metrics(rec, raw):
    if rec.get("outcome") != "ok":
        return None
    ev = rec["events"]
    trace = rec["trace"]
    m = {"routes": rec["routes"], "poll_interval_ms": rec["poll_interval_s"] * 1000}
    polls = lambda node, after: [p for p in trace if p["node"] == node and p["t"] >= after and "peers" in p]  # noqa: E731

    def sees(p, who):
        return any(x[0] == who for x in p["peers"]) or p["routes"].get(who, 0) > 0

    # A: n3 (holding 100,000 routes) joins n1 + n2.
    start = ev["n1_n2_start"]
    firsts = []
    for node in ("n1", "n2"):
        ps = polls(node, start)
        seen = next((p for p in ps if sees(p, "n3")), None)
        full = next((p for p in ps if p["routes"].get("n3", 0) == rec["routes"]), None)
        formed = next((p for p in ps if any(x[0] in ("n1", "n2") and x[2] for x in p["peers"])), None)
        before = [p for p in ps if seen and p["t"] < seen["t"]]
        m[f"A_{node}_seen_s"] = seen["t"] - start if seen else None
        m[f"A_{node}_full_s"] = full["t"] - start if full else None
        m[f"A_{node}_formed_s"] = formed["t"] - start if formed else None
        m[f"A_{node}_seen_resolution_ms"] = (seen["t"] - before[-1]["t"]) * 1000 if seen and before else None
        if seen:
            firsts.append(seen["t"])
        # Was the snapshot complete at the first poll that showed n3 at all?
        m[f"A_{node}_full_at_first_sight"] = bool(seen and full and seen["t"] == full["t"])
    if firsts and m["A_n1_full_s"] is not None and m["A_n2_full_s"] is not None:
        # A poll reads the node's state at some moment between its start (t) and its end
        # (t + dt). The join happened after the last poll that showed no sign of n3 started
        # and before the first one that showed n3 ended; the routes were all there before the
        # first full poll ended, and not yet when the last poll short of them started.
        t_seen = min(firsts)
        seen_end = min(p["t"] + p["dt"] for node in ("n1", "n2") for p in polls(node, start) if sees(p, "n3"))
        blank = [p for node in ("n1", "n2") for p in polls(node, start) if p["t"] < t_seen and not sees(p, "n3")]
        fulls, short = [], []
        for node in ("n1", "n2"):
            ps = polls(node, start)
            full = next(p for p in ps if p["routes"].get("n3", 0) == rec["routes"])
            fulls.append(full)
            short += [p for p in ps if p["t"] < full["t"]]
        last = max(fulls, key=lambda p: p["t"] + p["dt"])
        m["A_seen_s"] = t_seen - start
        m["A_start_to_all_s"] = last["t"] + last["dt"] - start
        if blank:
            m["A_join_to_all_max_s"] = last["t"] + last["dt"] - max(p["t"] for p in blank)
            m["A_join_to_all_min_s"] = max(0.0, max(p["t"] for p in short) - seen_end)
        m["A_full_poll_ms"] = last["dt"] * 1000
    # The polls that returned the 100,000 routes: what one costs.
    big = [p["dt"] for p in trace if any(v >= rec["routes"] for v in p.get("routes", {}).values())]
    small = [p["dt"] for p in trace if "routes" in p and sum(p["routes"].values()) == 0]
    m["poll_100k_ms"] = statistics.median(big) * 1000 if big else None
    m["poll_empty_ms"] = statistics.median(small) * 1000 if small else None
    # B: a fresh n4 joins the cluster holding n3's routes.
    if ev.get("n4_start") and ev.get("n4_holds_n3"):
        ps = polls("n4", ev["n4_start"])
        up = next((p for p in ps if p["peers"]), None)
        all3 = next((p for p in ps if sum(1 for x in p["peers"] if x[2]) >= 3), None)
        full = next((p for p in ps if p["routes"].get("n3", 0) == rec["routes"]), None)
        m["B_first_answer_s"] = ps[0]["t"] + ps[0]["dt"] - ev["n4_start"] if ps else None
        m["B_member_s"] = up["t"] + up["dt"] - ev["n4_start"] if up else None
        m["B_links_s"] = all3["t"] + all3["dt"] - ev["n4_start"] if all3 else None
        if full:
            short = [p for p in ps if p["t"] < full["t"]]
            m["B_full_max_s"] = full["t"] + full["dt"] - ev["n4_start"]
            m["B_full_min_s"] = (short[-1]["t"] if short else full["t"]) - ev["n4_start"]
            m["B_full_poll_ms"] = full["dt"] * 1000
    # C: 100,000 subscriptions made on n4 with its links up.
    j3 = j4 = None
    for rel in rec.get("loadgen_json", []):
        if rel.endswith("-routes-n3.json"):
            j3 = load(raw, rel)
        elif rel.endswith("-routes-n4.json"):
            j4 = load(raw, rel)
    w3, w4 = subscribe_window(j3), subscribe_window(j4)
    if w3:
        m["subscribe_n3_s"] = w3[1] - w3[0]
    if w4:
        m["subscribe_n4_s"] = w4[1] - w4[0]
    if ev.get("n1_holds_n4"):
        # Upper bound: from the last SUBACK (loadgen's phase end) to the end of the first poll
        # on which n1 held all of n4's routes.
        end = w4[1] if w4 else ev.get("n4_subscribed_seen")
        ps = polls("n1", ev.get("n4_subscribed_seen", 0))
        full = next((p for p in ps if p["routes"].get("n4", 0) == rec["routes"]), None)
        if end and full:
            short = [p for p in ps if p["t"] < full["t"]]
            m["C_lag_max_s"] = full["t"] + full["dt"] - end
            m["C_lag_min_s"] = max(0.0, short[-1]["t"] - end) if short else 0.0
            m["C_full_poll_ms"] = full["dt"] * 1000
            m["C_first_poll_after_s"] = ps[0]["t"] - end
    # CPU the nodes spent while n3's routes were taken in, and while n4 joined.
    cpu = rec.get("cpu")
    if cpu and m.get("A_start_to_all_s") is not None:
        a = cpu_over(cpu, start - 0.3, start + m["A_start_to_all_s"] + 0.3)
        if a:
            m["A_cpu_s"] = {k: v for k, v in a["cpu_s"].items() if k.startswith("n")}
    return m


def ms(v):
    return "–" if v is None else f"{v * 1000:,.0f}"


def bounds(m, key):
    lo, hi = m.get(f"{key}_min_s"), m.get(f"{key}_max_s")
    if hi is None:
        return "–"
    return f"{ms(lo)}–{ms(hi)}" if lo is not None else f"≤ {ms(hi)}"


def conv_line(m):
    return (f"A: n3 seen {ms(m.get('A_seen_s'))} ms after n1/n2 started, join -> all routes on both "
            f"{bounds(m, 'A_join_to_all')} ms; B: n4 holds them {bounds(m, 'B_full')} ms after its start; "
            f"C: last SUBACK -> n1 holds all {bounds(m, 'C_lag')} ms")


# ---- the report ----------------------------------------------------------------------------

def row_name(n, topo):
    if n == 1:
        return "1"
    return f"{n} (" + {"cross": "cross", "local": "local", "cross-async": "cross, this broker async"}[topo] + ")"


def fmt(v, spec=",.0f", none="–"):
    return none if v is None else format(v, spec)


def pct(v):
    return "–" if v is None else f"{v:.0f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    raw = Path(a.raw)
    meta = json.loads((raw / "meta.json").read_text()) if (raw / "meta.json").exists() else {}
    runs = {}
    for f in sorted((raw / "runs").glob("*.json")):
        r = json.loads(f.read_text())
        runs[r["id"]] = r
    convs = [json.loads(f.read_text()) for f in sorted((raw / "convergence").glob("*.json"))]
    out = []
    w = out.append
    rel_raw = os.path.relpath(raw, Path(a.out).parent)
    brokers = [b for b in ("broker", "rmqtt") if any(r.get("broker") == b for r in runs.values())]

    w("# Cluster: throughput, latency, forwarding cost and route convergence\n")
    w(f"Clusters of 1, 2 and 3 nodes of this broker and of RMQTT on loopback, each node a process on its own "
      f"127.x.y.z address, under `loadgen`; then route convergence of this broker with 100,000 subscriptions. "
      f"Generated by `ci/bench_cluster_report.py` from [`cluster/raw/`]({rel_raw}/) (loadgen's result JSON and "
      f"CPU samples from `/proc`); do not edit by hand. Rerun everything with `{meta.get('command', 'ci/bench-cluster.sh')}`.\n")

    # ---- headline
    fixed = {(r["broker"], r["nodes"], r["topology"]): r for r in runs.values()
             if r["id"].endswith("-fixed") and r.get("attempt", 1) >= 1}
    # the second attempt of a disturbed run replaces the first (same id, written last)
    fm = {k: p2p_metrics(r, raw) for k, r in fixed.items()}
    search = {}
    for r in runs.values():
        if "-search-" not in r["id"] or r.get("outcome") == "skipped":
            continue
        search.setdefault((r["broker"], r["nodes"]), []).append(r)
    best = {}
    for key, steps in search.items():
        steps.sort(key=lambda r: (r.get("step") or 0, r.get("attempt", 1)))
        final = {}
        for r in steps:
            final[r["rate"]] = (r, verdict(r, raw))  # a second attempt's verdict stands
        passed = [(rate, rv) for rate, rv in final.items() if rv[1]["pass"]]
        failed = [(rate, rv) for rate, rv in final.items() if not rv[1]["pass"]]
        hp = max(passed, key=lambda x: x[0]) if passed else None
        above = [f for f in failed if not hp or f[0] > hp[0]]
        lf = min(above, key=lambda x: x[0]) if above else None
        trail = []
        for r in steps:
            v = verdict(r, raw)
            trail.append(f"{r['rate']:,}{'✓' if v['pass'] else '✗'}{'(2nd)' if r.get('attempt', 1) > 1 else ''}")
        best[key] = {"pass": hp, "fail": lf, "trail": " ".join(trail)}

    w("## Headline\n")
    heads = []
    for b in brokers:
        for n in (1, 2, 3):
            x = best.get((b, n))
            m = fm.get((b, n, "cross"))
            if x and x["pass"]:
                heads.append(f"{LABEL[b]}, {n} node{'s' if n > 1 else ''}: highest passing rate "
                             f"{x['pass'][0]:,} msg/s (p99 {x['pass'][1][1]['p99_ms']:.1f} ms there)"
                             + (f"; at {fmt(m['target'])} msg/s p99 {m['p99_ms']:.2f} ms, "
                                f"{fmt(m.get('cpu_s_per_M'), '.1f')} CPU s per million messages" if m else ""))
            elif m:
                heads.append(f"{LABEL[b]}, {n} node{'s' if n > 1 else ''}: at {fmt(m['target'])} msg/s p99 "
                             f"{m['p99_ms']:.2f} ms, {fmt(m.get('cpu_s_per_M'), '.1f')} CPU s per million messages")
    for h in heads:
        w(f"- {h}")
    fwd = fm.get(("broker", 2, "cross")), fm.get(("broker", 1, "cross")), fm.get(("broker", 2, "local"))
    if fwd[0] and fwd[1] and fwd[0].get("cpu_s_per_M") and fwd[1].get("cpu_s_per_M"):
        w(f"- Forwarding cost (this broker): a message forwarded between two nodes costs "
          f"{fwd[0]['cpu_s_per_M'] / fwd[1]['cpu_s_per_M']:.2f}× the CPU of a message delivered on a single node"
          + (f" and {fwd[0]['cpu_s_per_M'] / fwd[2]['cpu_s_per_M']:.2f}× that of a local message inside the same "
             f"2-node cluster" if fwd[2] and fwd[2].get("cpu_s_per_M") else "") + " (all nodes' CPU summed).")
    cms = [convergence_metrics(c, raw) for c in convs]
    okc = [c for c in cms if c]
    if okc:
        def med(key):
            vals = [c[key] for c in okc if c.get(key) is not None]
            return statistics.median(vals) if vals else None
        w(f"- Route convergence (this broker, {len(okc)} repetition{'s' if len(okc) > 1 else ''}, median of the "
          f"upper bounds): a node holding 100,000 subscriptions joins a 2-node cluster: both hold all its routes "
          f"at most {ms(med('A_join_to_all_max_s'))} ms after the join; a fresh node joining a cluster that holds "
          f"100,000 routes holds them all at most {ms(med('B_full_max_s'))} ms after its process started; "
          f"100,000 subscriptions made on a member are all on another node at most {ms(med('C_lag_max_s'))} ms "
          f"after the last SUBACK. (Bounds, because the route counts come from polling the admin API; a poll "
          f"that returns 100,000 routes itself takes {fmt(med('poll_100k_ms'), '.0f')} ms.)")
    w("")

    # ---- how it ran
    w("## How it ran\n")
    mach = meta.get("machine", {})
    w(f"- Command: `{meta.get('command', '?')}`, commit {meta.get('commit', '?')}"
      + (f" (modified: {meta['dirty']})" if meta.get("dirty") else "") + f"; {meta.get('date', '?')}; "
      f"the whole run took {fmt((meta.get('elapsed_s') or 0) / 60, '.1f')} min.")
    w(f"- Machine: {mach.get('cpu', '?')}, **{mach.get('cores', '?')} cores**, {mach.get('memory', '?')} memory, "
      f"kernel {mach.get('kernel', '?')}; {mach.get('os', '?')}; {meta.get('rustc', '')}; load average "
      f"{meta.get('loadavg_start', '?')} at the start, {meta.get('loadavg_end', '?')} at the end.")
    w(f"- Placement: **every broker node on CPU 0** and **both loadgen processes (and the driver script that "
      f"samples `/proc` and polls the admin API) on CPU 1** (`taskset -c`). With two cores there is no core per "
      f"node: the nodes of a cluster share one core, so a bigger cluster here has *more* work on the same core, "
      f"not more capacity. These figures are the cost of clustering, not its scaling. "
      f"Open files per process: {meta.get('nofile', '?')}.")
    v = meta.get("versions", {})
    w(f"- Versions: this broker {v.get('broker', '?')}; RMQTT {v.get('rmqtt', '?')}; loadgen {v.get('loadgen', '?')}.")
    w(f"- Configurations: this broker: defaults (`max_inflight` 32, `max_queued_messages` 1000, "
      f"`cluster.forward = \"sync\"`: a QoS 1 PUBACK waits for the remote node's acknowledgement), "
      f"`[auth] allow_anonymous = true`, `RUST_LOG=warn`; nodes list each other as seeds. RMQTT: the single-node "
      f"configuration of `ci/bench.sh` (retainer and shared-subscription plugins, no ACL / HTTP API, `max_inflight` "
      f"128, busy check off, log level warn) plus, for 2 and 3 nodes, the **`rmqtt-cluster-raft`** plugin "
      f"(`node_grpc_addrs` = every node's `[rpc] server_addr`, `raft_peer_addrs` = every node's raft port; "
      f"node 1 started first and leads, the others join it one at a time). 1 node means a standalone broker "
      f"for both (no cluster section, no cluster plugin).")
    w("- A message crosses one peer link at most in both brokers, and only to nodes with a matching route; in "
      "both, routes (topic filter → nodes) are replicated to every node: this broker by per-node snapshots and "
      "deltas over its peer links (ALGORITHM.md), RMQTT through its Raft log. RMQTT's Raft plugin forwards a "
      "publish to another node as a gRPC `notify` (fire and forget; batched up to `node_grpc_batch_size` 128) "
      "and acknowledges the publisher without waiting for it, as this broker does with `cluster.forward = "
      "\"async\"`; this broker's default, `\"sync\"`, holds the PUBACK until the remote node has queued the "
      "message. The *2 (cross, this broker async)* row runs this broker with `async` for that comparison.")
    w("")

    # ---- point-to-point
    w("## 1. Cross-node point-to-point\n")
    w(f"{meta.get('pairs', 500)} publisher/subscriber pairs at QoS 1, 256-byte payloads; publisher i publishes to "
      f"`bench/p2p/i`, to which only subscriber i subscribes ([cluster-p2p-pub.toml](../loadgen/scenarios/cluster-p2p-pub.toml), "
      f"[cluster-p2p-sub.toml](../loadgen/scenarios/cluster-p2p-sub.toml), two loadgen processes so that the halves "
      f"get different host lists). **Publisher i is connected to node i mod n and subscriber i to node (i+1) mod n**: "
      f"with 2 and 3 nodes every message is published on one node and delivered by another, and every node both "
      f"publishes and delivers. With 1 node both are on the one node. The **2 nodes, local** row puts subscriber i "
      f"on its publisher's node (no message crosses a link): the in-cluster reference for the forwarding cost. "
      f"Each run starts a fresh cluster and waits until the subscriptions' routes are on every node (this broker: "
      f"checked through the admin API; RMQTT: a fixed 2 s, its route table is not visible without its HTTP API).\n")
    w(f"### At a fixed rate: {fmt(meta.get('base_rate', 5000))} msg/s for {meta.get('publish', '20s')}\n")
    w("| broker | nodes | received msg/s | published (of target) | delivered | lost | dup. | p50 ms | p99 ms | p99.9 ms | max ms "
      "| CPU s / M msgs (all nodes) | each node's CPU | nodes' core busy | loadgen's core busy | others |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    order = [(1, "cross"), (2, "cross"), (2, "cross-async"), (2, "local"), (3, "cross")]
    for b in brokers:
        for n, topo in order:
            r = fixed.get((b, n, topo))
            if r is None:
                continue
            name = row_name(n, topo)
            m = fm.get((b, n, topo))
            if m is None:
                w(f"| {LABEL[b]} | {name} | {r['outcome']}: {r.get('note', '')[:200]} |" + " |" * 14)
                continue
            each = " / ".join(pct(x) for x in m.get("node_pct", []))
            flag = " ⚠" if (m.get("others_pct") or 0) > OTHERS_MAX_PCT else ""
            w(f"| {LABEL[b]} | {name} | {m['received_rate']:,.0f} | {m['achieved']:,.0f} ({m['achieved'] / m['target'] * 100:.1f}%) "
              f"| {m['delivered'] * 100:.2f}% | {m['lost']} | {m['duplicates']} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
              f"| {m['p999_ms']:.2f} | {m['max_ms']:.1f} | {fmt(m.get('cpu_s_per_M'), '.1f')} | {each} "
              f"| {pct(m.get('core0_pct'))} | {pct(m.get('core1_pct'))} | {pct(m.get('others_pct'))}{flag} |")
    w("")
    w("- **received msg/s**: messages the subscribers received per second of publishing (the drain that follows "
      "included); **published**: the rate loadgen achieved against the target (open loop: it keeps its schedule "
      "and waits for nothing but QoS 1's window of 64 messages in flight per publisher).")
    w("- **latency**: receive time minus the *scheduled* send time (a publisher that falls behind shows as "
      "latency), measured by the subscribing loadgen process from the timestamp in the payload (one machine, "
      "one clock); about 0.5 ms of every figure is loadgen's 1 ms timer tick.")
    w("- **CPU s / M msgs**: the CPU time (user + system, all threads, from `/proc/PID/stat`) of all the "
      "cluster's nodes together during the publish phase and its drain, per million messages received. **each "
      "node's CPU**: per node, percent of one core while publishing; they all share CPU 0, whose busy time "
      "(interrupts and softirqs included, where loopback TCP is partly done) is **nodes' core busy**. **others**: "
      f"user time of other processes on the two cores (above {OTHERS_MAX_PCT:g}% ⚠ the run was disturbed and "
      "was repeated once; the table shows the second).")
    for b in brokers:
        for n, topo in ((2, "cross"), (2, "cross-async"), (3, "cross")):
            m = fm.get((b, n, topo))
            if m and m.get("forwarded") is not None:
                w(f"- This broker's counters, {row_name(n, topo)}: {m['forwarded']:,} messages forwarded, "
                  f"{m['forwards_received']:,} received from peers, {m['forwards_dropped']:,} dropped (link queue full), "
                  f"for {m['sent']:,} published.")
    w("")

    # ---- ratios
    if len(brokers) == 2:
        w("This broker ÷ RMQTT at the fixed rate (below 1 is better for this broker for latency and CPU):\n")
        w("| nodes | p99 latency | p99.9 latency | CPU s / M msgs |")
        w("| --- | ---: | ---: | ---: |")
        for n, topo, rtopo in [(1, "cross", "cross"), (2, "cross", "cross"), (2, "cross-async", "cross"),
                               (2, "local", "local"), (3, "cross", "cross")]:
            a_, b_ = fm.get(("broker", n, topo)), fm.get(("rmqtt", n, rtopo))
            if not a_ or not b_:
                continue
            div = lambda x, y: "–" if not x or not y else f"{x / y:.2f}"  # noqa: E731
            name = row_name(n, topo)
            w(f"| {name} | {div(a_['p99_ms'], b_['p99_ms'])} | {div(a_['p999_ms'], b_['p999_ms'])} "
              f"| {div(a_.get('cpu_s_per_M'), b_.get('cpu_s_per_M'))} |")
        w("")

    # ---- search
    w("### Maximum throughput\n")
    w(f"Per broker and cluster size (cross-node placement): the publish rate starts at "
      f"{fmt(2 * meta.get('base_rate', 5000))} msg/s and doubles while a step passes, then "
      f"{meta.get('bisections', 2)} bisections between the highest pass and the lowest failure. Each step is "
      f"{meta.get('step_publish', '5s')} of publishing plus {meta.get('step_drain', '2s')} of drain on a fresh "
      f"cluster. A step fails when p99 latency is over {P99_MAX_MS:g} ms, loadgen published under 95% of the "
      f"target, under 95% of the messages arrived, or a connection failed; a failure near the bounds (or "
      f"disturbed by other processes) is run once more and the second verdict stands.\n")
    w("| broker | nodes | highest passing msg/s | p99 ms there | nodes' core / loadgen's core there | CPU s / M msgs there "
      "| first failure | why | nodes' / loadgen's core there | steps |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for b in brokers:
        for n in (1, 2, 3):
            x = best.get((b, n))
            if not x:
                skipped = [r for r in runs.values() if r.get("broker") == b and r.get("nodes") == n
                           and r.get("outcome") == "skipped"]
                if skipped:
                    w(f"| {LABEL[b]} | {n} | – | | | | | {skipped[0]['note']} | | |")
                continue
            hp, lf = x["pass"], x["fail"]
            hv = hp[1][1] if hp else None
            lv = lf[1][1] if lf else None
            cores_ = lambda v: f"{pct(v.get('core0_pct'))} / {pct(v.get('core1_pct'))}" if v else ""  # noqa: E731
            w(f"| {LABEL[b]} | {n} | {fmt(hp[0]) if hp else 'none'} | {fmt(hv['p99_ms'], '.2f') if hv else ''} "
              f"| {cores_(hv)} | {fmt(hv.get('cpu_s_per_M'), '.1f') if hv else ''} | {fmt(lf[0]) if lf else '–'} "
              f"| {'; '.join(lv['reasons']) if lv else ''} | {cores_(lv)} | {x['trail']} |")
    w("")
    if len(brokers) == 2:
        w("| highest passing msg/s, this broker ÷ RMQTT | 1 node | 2 nodes | 3 nodes |")
        w("| --- | ---: | ---: | ---: |")
        cells = []
        for n in (1, 2, 3):
            a_, b_ = best.get(("broker", n)), best.get(("rmqtt", n))
            cells.append(f"{a_['pass'][0] / b_['pass'][0]:.2f}" if a_ and b_ and a_["pass"] and b_["pass"] else "–")
        w(f"| cross-node p2p, QoS 1 | {' | '.join(cells)} |")
        w("")

    # ---- forwarding cost
    w("## 2. CPU cost of a forwarded message\n")
    w("From the fixed-rate runs above: the CPU time of all nodes together per million messages delivered. "
      "**1 node**: published and delivered by one process. **2 nodes, local**: a 2-node cluster in which every "
      "subscriber is on its publisher's node (the cluster's membership and links are there, no message crosses "
      "them). **2 and 3 nodes, cross**: every message is received from its publisher by one node, forwarded over "
      "a peer link (this broker: one `Forward` frame and, QoS 1 with `forward = \"sync\"`, one `ForwardAck` back) "
      "and delivered by another node, so its cost is split over two processes.\n")
    w("| broker | 1 node | 2 nodes, local | 2 nodes, cross | 2 nodes, cross, async | 3 nodes, cross "
      "| forwarded ÷ single node | forwarded ÷ local in cluster |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in brokers:
        c1, c2l, c2, c2a, c3 = (fm.get((b, 1, "cross")), fm.get((b, 2, "local")), fm.get((b, 2, "cross")),
                                fm.get((b, 2, "cross-async")), fm.get((b, 3, "cross")))
        g = lambda m: m.get("cpu_s_per_M") if m else None  # noqa: E731
        div = lambda x, y: "–" if not x or not y else f"{x / y:.2f}×"  # noqa: E731
        w(f"| {LABEL[b]} | {fmt(g(c1), '.1f')} | {fmt(g(c2l), '.1f')} | {fmt(g(c2), '.1f')} | {fmt(g(c2a), '.1f')} "
          f"| {fmt(g(c3), '.1f')} | {div(g(c2), g(c1))} | {div(g(c2), g(c2l))} |")
    w("")
    w("CPU seconds per million messages; a forwarded message's figure includes the work of both nodes it passes "
      "through. The difference between *2 nodes, cross* and *2 nodes, local* is what forwarding adds per message "
      "(peer-link framing, the extra socket writes and reads, the sync acknowledgement); the difference between "
      "*2 nodes, local* and *1 node* is the cost of being in a cluster at all (membership, a second process "
      "sharing the core).\n")

    # ---- convergence
    w("## 3. Route convergence with 100,000 subscriptions (this broker)\n")
    w("[cluster-routes-100k.toml](../loadgen/scenarios/cluster-routes-100k.toml): 1,000 clients, 100 subscriptions "
      "each (90 exact filters `conv/i/fk`, 10 wildcard filters `conv/i/+/wk`), all distinct: 100,000 routes. Nodes "
      "on CPU 0, loadgen and the polling script on CPU 1. Route counts are read from the admin API, the request "
      "`broker ctl --json cluster status` makes (`GET /api/v1/cluster`: members, link state, every route per "
      f"origin), polled every {okc[0]['poll_interval_ms']:.0f} ms plus the request's own time.\n" if okc else
      "No repetition produced results.\n")
    w("- **A. A node joins holding 100,000 subscriptions.** n3 starts alone (its only seed, n2, is not up yet) "
      "and its clients subscribe the 100,000 filters. Then n1 and n2 start, seeded with each other: they form a "
      "2-node cluster within a few tens of ms, and n3, which announces itself to n2 every 2 s until it answers, "
      "joins them. *first seen*: the first poll on which n1 or n2 showed n3 at all, as a member or by its routes "
      "(up to 2 s of announce period: not a convergence delay). *join → all routes*: from the join to both n1 "
      "and n2 holding all 100,000 of n3's routes.")
    w("- **B. A fresh node joins a cluster holding 100,000 routes.** n4 starts with seed n1 while n1, n2, n3 "
      "run (n3 holding the routes): from n4's process start to the first poll listing a member, to its links to "
      "all three being up, and to holding all of n3's routes (n3 sends them when its link to n4 comes up, which "
      "needs n3 to learn of n4 through membership gossip).")
    w("- **C. 100,000 subscriptions made on a member.** New clients subscribe 100,000 other filters on n4 "
      "(the links are up: route deltas); from the last SUBACK (loadgen's phase end) to the first poll on which "
      "n1 held all of them. n1 is first polled after the last SUBACK, since a poll during the subscriptions would "
      "return up to 200,000 routes each time and slow n1 down.\n")
    if okc:
        w("Times in ms. A poll reads a node's state at some moment between its start and its end, so each time "
          "is given as bounds: the lower from the last poll that did not yet show the state, the upper to the "
          "end of the first poll that showed it (which, returning 100,000 routes, is itself long: see the "
          "*poll* columns).\n")
        w("| repetition | A: n3 first seen (after n1, n2 start) | A: join → all routes on n1 and n2 | A: that poll "
          "| B: n4 member / all links up | B: n4 holds all n3's routes (after its start) | B: that poll "
          "| C: 100,000 subscribed in | C: last SUBACK → n1 holds all | C: that poll |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c, m in zip(convs, cms):
            if m is None:
                w(f"| {c['rep']} | {c['outcome']}: {c.get('note', '')[:200]} |" + " |" * 8)
                continue
            w(f"| {c['rep']} | {ms(m.get('A_seen_s'))} | {bounds(m, 'A_join_to_all')} | {fmt(m.get('A_full_poll_ms'))} "
              f"| {ms(m.get('B_member_s'))} / {ms(m.get('B_links_s'))} | {bounds(m, 'B_full')} "
              f"| {fmt(m.get('B_full_poll_ms'))} | {fmt(m.get('subscribe_n4_s'), '.1f')} s | {bounds(m, 'C_lag')} "
              f"| {fmt(m.get('C_full_poll_ms'))} |")
        w("")
        pc = [m["poll_100k_ms"] for m in okc if m.get("poll_100k_ms")]
        pe = [m["poll_empty_ms"] for m in okc if m.get("poll_empty_ms")]
        sub3 = [m["subscribe_n3_s"] for m in okc if m.get("subscribe_n3_s")]
        atf = sum(1 for m in okc for nd in ("n1", "n2") if m.get(f"A_{nd}_full_at_first_sight"))
        w(f"- n3's clients took {fmt(statistics.median(sub3), '.1f') if sub3 else '–'} s (median) to make the "
          f"100,000 subscriptions on a node alone (loadgen's subscribe phases, one SUBSCRIBE per filter, 1,000 "
          f"clients in parallel).")
        w(f"- A peer's routes arrive as one snapshot (one frame) when its link comes up, so a node's count of n3's "
          f"routes jumps from 0 to 100,000 between two polls: in {atf} of {2 * len(okc)} cases the first poll that "
          f"showed n3 at all already showed all its routes (the link, and its snapshot, can come before the "
          f"membership update that lists n3).")
        if pc:
            w(f"- One poll returning 100,000 routes took {statistics.median(pc):.0f} ms (median; the broker builds "
              f"the whole JSON under its lock), one with none {statistics.median(pe):.1f} ms: the polling "
              f"itself is small next to the intervals measured, except in C (see above).")
        a_cpu = [m.get("A_cpu_s") for m in okc if m.get("A_cpu_s")]
        if a_cpu:
            w("- CPU seconds the nodes spent from the start of n1 and n2 until both held n3's routes: "
              + "; ".join(", ".join(f"{k} {v:.2f}" for k, v in sorted(x.items())) for x in a_cpu) + ".")
        w("")

    # ---- notes
    w("## Notes\n")
    w("- **Two cores.** All nodes of a cluster run on CPU 0 and loadgen on CPU 1. A cluster of 3 nodes here "
      "does three nodes' work on the core one node had: the rows for 2 and 3 nodes show what clustering costs, "
      "and a real deployment (a core or a machine per node) would scale where these figures fall. Loopback TCP "
      "is partly done in softirq context, charged to no process: the *core busy* columns include it, the "
      "per-process CPU figures do not.")
    w("- **Two loadgen processes.** loadgen connects client i to `hosts[i % n]`, the same rule for every group of a "
      "scenario, so the subscribers (cluster-p2p-sub.toml, hosts rotated by one) and the publishers "
      "(cluster-p2p-pub.toml) run as two processes, both on CPU 1. The subscribers are interrupted (Ctrl-C, which "
      "ends their hold phase and writes their result) after the publishers' drain.")
    w("- **RMQTT** runs its Raft cluster plugin; its broadcast plugin (`rmqtt-cluster-broadcast`, every publish "
      "sent to every node, no replicated routes) was not measured. RMQTT's route convergence is not measured: "
      "its routes are visible only through its HTTP API plugin, which these runs leave off, and subscriptions "
      "go through its Raft log, a different design from this broker's per-node snapshots.")
    w(f"- **Search steps** are short ({meta.get('step_publish', '5s')}): they find where latency or delivery "
      f"breaks down, not a sustained capacity. The fixed-rate rows come from {meta.get('publish', '20s')} runs.")
    w("- **Convergence** times are single-shot wall-clock figures per repetition on a shared machine; the table "
      "gives every repetition. A's *seen* time includes up to 2 s of n3's announce period (it is not a "
      "convergence delay); *join → all* is the figure that measures route transfer.")
    notes = [r for r in runs.values() if r.get("outcome") not in ("ok", "skipped")]
    for r in notes:
        w(f"- Run `{r['id']}`: {r['outcome']}: {r.get('note', '')[:300]}")
    for c in convs:
        if c.get("outcome") != "ok":
            w(f"- Convergence repetition {c['rep']}: {c['outcome']}: {c.get('note', '')[:300]}")
    waits = [r.get("waited_for_bench_sh_s", 0) for r in runs.values()] + [c.get("waited_for_bench_sh_s", 0) for c in convs]
    if any(waits):
        w(f"- The runs waited {sum(waits)} s in all for `ci/bench.sh` (another benchmark) to end before measuring.")
    w(f"\nRaw results: `cluster/raw/runs/*.json` (one per run: cluster, timings, `/proc` samples), "
      f"`cluster/raw/loadgen/*.json` (loadgen's results; `loadgen report` plots them), "
      f"`cluster/raw/convergence/*.json` (every admin API poll), `cluster/raw/meta.json`.")
    Path(a.out).write_text("\n".join(out) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
