#!/usr/bin/env python3
"""Writes reports/single-node.md from the raw results of ci/bench.sh.

  bench_report.py RAW_DIR --out reports/single-node.md

RAW_DIR (reports/single-node/raw) holds what one ci/bench.sh run left:
  meta.env         key=value: the command, commit, limits, durations, load average
  brokers.tsv      name, label, version, state (ok / not-built), note, how installed, configuration
  runs.tsv         scenario, broker, outcome, result file, note
  search.tsv       scenario, broker, step, rate, verdict, reason, target, achieved,
                   received, expected, p99 ms, broker CPU %, loadgen CPU %, broker core
                   busy %, loadgen core busy %, other processes' CPU %, marginal,
                   result file, attempt
  <broker>-<scenario>.json, search/*.json   loadgen results (RunResult, schema 1)
  cpu/<result stem>.tsv                     CPU samples by ci/bench.sh: loadgen's process, both cores
The report is generated: every figure comes from these files, so it can be
re-rendered from a committed RAW_DIR alone.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_scenario as bs  # noqa: E402

ORDER = ["broker", "mosquitto", "rumqttd", "rmqtt", "mqtt-lib"]
SCENARIOS = ["p2p-qos0", "p2p-qos1", "fan-out", "fan-in", "idle-connections"]
OURS = "broker"
NONE = "–"


# ---- reading -------------------------------------------------------------------

def read_tsv(path, width):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            fields += [""] * (width - len(fields))
            rows.append(fields[:width])
    return rows


def read_env(path):
    meta = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---- figures of one run ------------------------------------------------------------

def publish_figures(r, raw, stem):
    """The figures of a publish scenario's run (None when it published nothing)."""
    phases = [p for p in r["phases"] if p["kind"] == "publish"]
    if not phases:
        return None
    t = r["totals"]
    window = bs.publish_window(r)
    pub_s = max(window[1] - window[0], 1e-9)
    # The drain: the hold right after the last publish phase.
    last = max(p["index"] for p in phases)
    after = [p for p in r["phases"] if p["index"] == last + 1 and p["kind"] == "hold"]
    drain_end = after[0]["ended_s"] if after else window[1]
    # Whole seconds from the first of publishing to the last of the drain
    # (the disconnect that follows is left out).
    first_t, last_t = int(window[0]) + 1, int(drain_end)
    seconds = [s for s in r["series"] if first_t <= s["t"] <= last_t]
    cpu_s = sum((s.get("broker_cpu_percent") or 0.0) / 100.0 for s in seconds)
    received_in = sum(s["delta"]["received"] for s in seconds)
    deliveries = int(r["labels"].get("deliveries_per_message", "1") or 1)
    expected = t["pub_sent"] * deliveries
    lat = r["latency"]
    cpu = bs.cpu_over(r, window, bs.read_cpu_samples(os.path.join(raw, "cpu", stem + ".tsv"))) or {}
    return {
        "received_per_s": t["received"] / pub_s,
        "target": sum(p["target_rate"] for p in phases) / len(phases),
        "achieved": sum(p["achieved_rate"] for p in phases) / len(phases),
        "pub_sent": t["pub_sent"],
        "pub_acked": t["pub_acked"],
        "received": t["received"],
        "expected": expected,
        "lost": t["lost"],
        "duplicates": t["duplicates"],
        "out_of_order": t["out_of_order"],
        "overruns": t["pub_overruns"],
        "connects_failed": t["connects_failed"],
        "disconnects": t["disconnects"],
        "p50": lat["p50_us"] / 1000.0,
        "p99": lat["p99_us"] / 1000.0,
        "p999": lat["p999_us"] / 1000.0,
        "max": lat["max_us"] / 1000.0,
        "latency_count": lat["count"],
        "cpu_s_per_m": cpu_s / received_in * 1e6 if received_in else None,
        "broker_cpu": bs.broker_cpu_percent(r, window),
        "loadgen_cpu": cpu.get("loadgen"),
        "broker_core": cpu.get("broker_core"),
        "loadgen_core": cpu.get("loadgen_core"),
        "others": cpu.get("others"),
        "rss_max": (r.get("broker") or {}).get("rss_max_bytes"),
        "sequence_checked": not any(
            p.get("topic", "").startswith(("$share/", "$queue/"))
            for p in r["scenario"]["phase"] if p["kind"] == "subscribe"),
    }


def idle_figures(r):
    """Connection rate, memory and CPU per connection of the idle scenario."""
    connect = [p for p in r["phases"] if p["kind"] == "connect"]
    holds = [p for p in r["phases"] if p["kind"] == "hold"]
    if not connect:
        return None
    c = connect[0]
    t = r["totals"]
    broker = r.get("broker") or {}
    # RSS and connections at the last whole second of the hold that follows the connects.
    hold_end = holds[-1]["ended_s"] if holds else c["ended_s"]
    at_end = [s for s in r["series"] if s["t"] <= int(hold_end)]
    last = at_end[-1] if at_end else None
    held = last["connections"] if last else 0
    rss_end = (last or {}).get("broker_rss_bytes")
    rss_before = broker.get("rss_before_bytes")
    per_conn = (rss_end - rss_before) / held if held and rss_end and rss_before is not None else None
    in_connect = [s for s in r["series"] if s["t"] <= int(c["ended_s"]) + 1]
    cpu_s = sum((s.get("broker_cpu_percent") or 0.0) / 100.0 for s in in_connect)
    return {
        "offered": c["target_rate"],
        "rate": c["achieved_rate"],
        "connect_s": c["ended_s"] - c["started_s"],
        "ok": t["connects_ok"],
        "failed": t["connects_failed"],
        "dropped": t["disconnects"],
        "held": held,
        "rss_before": rss_before,
        "rss_end": rss_end,
        "rss_per_conn": per_conn,
        "cpu_ms_per_conn": cpu_s * 1000.0 / t["connects_ok"] if t["connects_ok"] else None,
        "peak_per_s": max((s["delta"]["connects_ok"] for s in r["series"]), default=0),
        "loadgen_rss_per_conn": r.get("loadgen_rss_per_connection_bytes"),
    }


# ---- formatting ------------------------------------------------------------------------

def fmt_int(v):
    return NONE if v is None else f"{v:,.0f}"


def fmt_ms(v):
    if v is None:
        return NONE
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def fmt_num(v):
    return NONE if v is None else f"{v:.2f}" if v < 10 else f"{v:.1f}"


# Other processes on the two cores beyond this (percent of one core) mark a disturbed run.
OTHERS_MAX = 10.0


def fmt_others(v):
    if v is None:
        return NONE
    return f"**{v:.0f}%** ⚠" if v > OTHERS_MAX else f"{v:.0f}%"


def fmt_pct(v):
    return NONE if v is None else f"{v:.0f}%"


def fmt_bytes(v):
    if v is None:
        return NONE
    if abs(v) >= 2**20:
        return f"{v / 2**20:,.1f} MiB"
    if abs(v) >= 2**10:
        return f"{v / 2**10:,.1f} KiB"
    return f"{v:,.0f} B"


def fmt_ratio(ours, peer):
    if ours is None or peer is None or peer == 0:
        return NONE
    return f"{ours / peer:.2f}"


def cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


# ---- the report ---------------------------------------------------------------------------

class Report:
    def __init__(self, raw):
        self.raw = raw
        self.meta = read_env(os.path.join(raw, "meta.env"))
        self.brokers = {row[0]: row for row in read_tsv(os.path.join(raw, "brokers.tsv"), 7)}
        self.names = [n for n in ORDER if n in self.brokers] + [n for n in self.brokers if n not in ORDER]
        self.ran = [n for n in self.names if self.brokers[n][3] == "ok"]
        self.runs = {}
        for sc, name, outcome, file, note in read_tsv(os.path.join(raw, "runs.tsv"), 5):
            self.runs[(sc, name)] = (outcome, file, note)
        ids = {sc for sc, _ in self.runs}
        self.scenarios = [s for s in SCENARIOS if s in ids] + sorted(ids - set(SCENARIOS))
        self.results = {}
        for (sc, name), (outcome, file, _) in self.runs.items():
            r = load_json(os.path.join(raw, file)) if file else None
            if r is not None:
                self.results[(sc, name)] = r
        self.search = read_tsv(os.path.join(raw, "search.tsv"), 19)
        self.notes = []
        self.limits = {}
        self.out = []

    def w(self, line=""):
        self.out.append(line)

    def label(self, name):
        return self.brokers[name][1] if name in self.brokers else name

    def scenario_doc(self, sc):
        for name in self.ran:
            r = self.results.get((sc, name))
            if r:
                return r["scenario"]
        return None

    def is_idle(self, sc):
        doc = self.scenario_doc(sc)
        return doc is not None and not any(p["kind"] == "publish" for p in doc["phase"])

    def render(self):
        m = self.meta
        self.w("# Single node: this broker beside its peers")
        self.w()
        self.w("The load scenarios of `loadgen/scenarios/` run by `ci/bench.sh` against this repository's broker and its")
        self.w("peers, each scenario on a fresh broker process listening on loopback, the broker pinned to one core and")
        self.w("loadgen to the other. Generated by `ci/bench_report.py` from [`single-node/raw/`](single-node/raw/);")
        self.w("do not edit by hand.")
        self.w()
        self.headline()
        self.how_it_ran()
        for sc in self.scenarios:
            if self.is_idle(sc):
                self.idle_section(sc)
            else:
                self.publish_section(sc)
        self.search_section()
        self.notes_section()
        return "\n".join(self.out) + "\n"

    # -- how it ran --------------------------------------------------------------------

    def machine(self):
        for r in self.results.values():
            mach = r["machine"]
            # loadgen counts the cores it may run on, one under taskset: the machine's come from meta.env.
            cores = self.meta.get("cores") or mach["cores"]
            return (f"{mach['cpu_model']}, {cores} cores, {mach['memory_bytes'] / 2**30:.0f} GiB memory, "
                    f"kernel {mach['kernel']}")
        return "unknown"

    def how_it_ran(self):
        m = self.meta
        self.w("## How it ran")
        self.w()
        self.w(f"- Command: `{m.get('command', 'ci/bench.sh')}`, commit {m.get('commit', '?')}"
               + (f" (uncommitted changes in: {m['dirty'].strip()})" if m.get("dirty", "").strip() else ""))
        total = f" ({duration(int(m['elapsed_script']))} with the build and the micro-benchmarks before it)" \
            if m.get("elapsed_script") and m.get("elapsed_script") != m.get("elapsed") else ""
        self.w(f"- Date: {m.get('date', '?')}; the load part took {duration(int(m.get('elapsed', 0)))}{total}")
        self.w(f"- Machine: {self.machine()}; {m.get('os', '')}; {m.get('rustc', '')}; "
               f"load average {m.get('loadavg_start', '?')} at the start, {m.get('loadavg_end', '?')} at the end")
        self.w(f"- Pinning: every broker on CPU {m.get('broker_cpu', '0')} and loadgen on CPU "
               f"{m.get('loadgen_cpu', '1')} (`taskset -c`); a multi-threaded broker sees one CPU, so its runtime "
               "starts one worker. Open files per process: "
               f"{m.get('nofile', '?')} (broker and loadgen).")
        self.w(f"- Load generator: {m.get('loadgen_version', 'loadgen')}, built with the broker (`loadgen run SCENARIO "
               "--json FILE --broker-pid PID --label ...`), MQTT 5 clients, 256-byte payloads carrying a sequence "
               "number and the scheduled send time.")
        self.w(f"- Publish phases of the scenario runs: {m.get('publish_duration', '?')}; throughput-search steps: "
               f"{m.get('step_duration', '?')} of publishing plus {m.get('step_drain', '?')} of drain, each on a "
               "fresh broker process.")
        self.w()
        self.w("| broker | version | installed | configuration | state |")
        self.w("| --- | --- | --- | --- | --- |")
        for name in self.names:
            _, label, version, state, note, how, config = self.brokers[name]
            shown = "ran" if state == "ok" else f"**{state}**: {note}"
            self.w(f"| {cell(label)} | {cell(version or NONE)} | {cell(how)} | {cell(config)} | {cell(shown)} |")
        self.w()
        not_built = [n for n in self.names if self.brokers[n][3] != "ok"]
        if not_built:
            self.w("Not run: " + ", ".join(f"{self.label(n)} ({self.brokers[n][4] or 'not built'})" for n in not_built) + ".")
        else:
            self.w("Every peer built and ran.")
        self.w()
        self.w("| scenario | what it does | plots |")
        self.w("| --- | --- | --- |")
        for sc in self.scenarios:
            doc = self.scenario_doc(sc)
            desc = doc.get("description", "") if doc else ""
            desc = desc.split(" [run by ci/bench.sh")[0]
            plots = f"[{sc}.md](single-node/{sc}.md)" if os.path.exists(
                os.path.join(os.path.dirname(self.raw), f"{sc}.md")) else NONE
            self.w(f"| `{sc}` ([toml](../loadgen/scenarios/{sc}.toml)) | {cell(desc)} | {plots} |")
        self.w()
        self.w("What the columns mean:")
        self.w()
        self.w("- **received msg/s**: messages received by the subscribers per second of publishing (those arriving "
               "in the drain that follows count too).")
        self.w("- **published**: the publish rate achieved against the scenario's target (open loop: loadgen keeps its "
               "schedule and never waits for the broker, except for QoS 1's in-flight window of 64 per publisher).")
        self.w("- **delivered**: messages received out of those expected (messages published × subscribers per message). "
               "**lost** and **dup.**: gaps and repeats in the per-publisher sequence numbers (not checked through a "
               "shared subscription, where each member sees part of a stream).")
        self.w("- **latency**: receive time minus the *scheduled* send time, over every message of the run: a "
               "publisher that falls behind shows as latency. loadgen's timer has a 1 ms tick, so about 0.5 ms of "
               "every figure is the publisher waking up after its scheduled time, the same for every broker.")
        self.w("- **CPU s / M msgs**: the broker's CPU time (user + system, all threads, from `/proc`) during the "
               "publish phase and its drain, per million messages received in those seconds.")
        self.w("- **broker CPU (its core)**, **loadgen CPU (its core)**: each process's CPU while publishing, in "
               "percent of one core, and in parentheses how busy its core was (from `/proc/stat`, interrupts and "
               "softirqs included, which no process is charged for: loopback TCP work is partly done there). "
               f"**others**: user CPU time that other processes took on the two cores meanwhile; above "
               f"{OTHERS_MAX:.0f}% of a core (⚠) the run was disturbed (such a run is repeated once: the table "
               "shows the second).")
        self.w("- **ratio** columns: this broker's figure divided by the peer's. For msg/s and connections/s above 1 "
               "is better for this broker; for latency, CPU and memory below 1 is.")
        self.w()

    # -- headline ---------------------------------------------------------------------

    def headline(self):
        """One table: the ratios of this broker to each peer, the figures the issue asks for."""
        if OURS not in self.ran:
            return
        peers = [n for n in self.ran if n != OURS]
        if not peers:
            return
        self.w("## Ratios at a glance")
        self.w()
        self.w("This broker's figure divided by each peer's (above 1 = this broker higher). msg/s is the highest "
               "rate that met the bounds in the throughput search (at the scenarios' fixed rates every broker "
               "delivers the same msg/s); p99 and CPU are from the fixed-rate runs; bytes per connection from the "
               "idle scenario.")
        self.w()
        self.w("| figure | scenario | " + " | ".join(self.label(p) for p in peers) + " |")
        self.w("| --- | --- | " + " | ".join("---:" for _ in peers) + " |")
        best = self.search_best()
        for sc in self.scenarios:
            if self.is_idle(sc):
                continue
            row = []
            for p in peers:
                ours, theirs = best.get((sc, OURS)), best.get((sc, p))
                row.append(fmt_ratio(ours, theirs))
            self.w(f"| max msg/s (search) | {sc} | " + " | ".join(row) + " |")
        for key, what in (("p99", "p99 latency"), ("cpu_s_per_m", "CPU s / M msgs")):
            for sc in self.scenarios:
                if self.is_idle(sc):
                    continue
                ours = self.pub_fig(sc, OURS)
                row = [fmt_ratio(ours and ours[key], (self.pub_fig(sc, p) or {}).get(key)) for p in peers]
                self.w(f"| {what} | {sc} | " + " | ".join(row) + " |")
        for sc in self.scenarios:
            if not self.is_idle(sc):
                continue
            ours = self.idle_fig(sc, OURS)
            for key, what in (("rss_per_conn", "bytes / connection"), ("rate", "connections / s")):
                row = [fmt_ratio(ours and ours[key], (self.idle_fig(sc, p) or {}).get(key)) for p in peers]
                self.w(f"| {what} | {sc} | " + " | ".join(row) + " |")
        self.w()

    def pub_fig(self, sc, name):
        r = self.results.get((sc, name))
        if r is None or self.runs[(sc, name)][0] != "ok":
            return None
        return publish_figures(r, self.raw, os.path.splitext(os.path.basename(self.runs[(sc, name)][1]))[0])

    def idle_fig(self, sc, name):
        r = self.results.get((sc, name))
        if r is None or self.runs[(sc, name)][0] != "ok":
            return None
        return idle_figures(r)

    # -- scenario sections ----------------------------------------------------------------

    def run_problem(self, sc, name):
        outcome, _, note = self.runs.get((sc, name), ("not-run", "", ""))
        if outcome == "ok":
            if note:
                self.notes.append(f"{sc}, {self.label(name)}: {note}.")
            return None
        return f"{outcome}: {note}" if note else outcome

    def publish_section(self, sc):
        self.w(f"## {sc}")
        self.w()
        doc = self.scenario_doc(sc)
        if doc:
            self.w(doc.get("description", "").split(" [run by ci/bench.sh")[0] + ".")
            self.w()
        self.w("| broker | received msg/s | published (of target) | delivered | lost | dup. | p50 ms | p99 ms "
               "| p99.9 ms | max ms | CPU s / M msgs | broker CPU (its core) | loadgen CPU (its core) | others "
               "| broker max RSS |")
        self.w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        figs = {}
        for name in self.ran:
            problem = self.run_problem(sc, name)
            f = None if problem else self.pub_fig(sc, name)
            if f is None:
                self.w(f"| {cell(self.label(name))} | **{cell(problem or 'no result')}** |" + " |" * 13)
                self.notes.append(f"{sc}, {self.label(name)}: {problem or 'no result'}.")
                continue
            figs[name] = f
            pub = f"{fmt_int(f['achieved'])} ({f['achieved'] / f['target'] * 100:.1f}%)" if f["target"] else fmt_int(f["achieved"])
            delivered = f"{f['received'] / f['expected'] * 100:.2f}%" if f["expected"] else NONE
            seq = f["sequence_checked"]
            self.w(f"| {cell(self.label(name))} | {fmt_int(f['received_per_s'])} | {pub} | {delivered} "
                   f"| {fmt_int(f['lost']) if seq else 'n/a'} | {fmt_int(f['duplicates']) if seq else 'n/a'} "
                   f"| {fmt_ms(f['p50'])} | {fmt_ms(f['p99'])} | {fmt_ms(f['p999'])} | {fmt_ms(f['max'])} "
                   f"| {fmt_num(f['cpu_s_per_m'])} | {fmt_pct(f['broker_cpu'])} ({fmt_pct(f['broker_core'])}) "
                   f"| {fmt_pct(f['loadgen_cpu'])} ({fmt_pct(f['loadgen_core'])}) | {fmt_others(f['others'])} "
                   f"| {fmt_bytes(f['rss_max'])} |")
            self.publish_notes(sc, name, f)
        self.w()
        ours = figs.get(OURS)
        peers = [n for n in figs if n != OURS]
        if ours and peers:
            self.w("| this broker ÷ | received msg/s | p99 latency | p99.9 latency | CPU s / M msgs |")
            self.w("| --- | ---: | ---: | ---: | ---: |")
            for p in peers:
                f = figs[p]
                self.w(f"| {cell(self.label(p))} | {fmt_ratio(ours['received_per_s'], f['received_per_s'])} "
                       f"| {fmt_ratio(ours['p99'], f['p99'])} | {fmt_ratio(ours['p999'], f['p999'])} "
                       f"| {fmt_ratio(ours['cpu_s_per_m'], f['cpu_s_per_m'])} |")
            self.w()
        if os.path.exists(os.path.join(os.path.dirname(self.raw), f"{sc}.md")):
            self.w(f"Plots (throughput, latency, connections, broker CPU and RSS over time): "
                   f"[single-node/{sc}.md](single-node/{sc}.md).")
            self.w()

    def publish_notes(self, sc, name, f):
        who = f"{sc}, {self.label(name)}"
        if f["others"] is not None and f["others"] > OTHERS_MAX:
            self.notes.append(f"{who}: other processes took {f['others']:.0f}% of a core on the two cores while it "
                              "published: the run was disturbed.")
        if f["connects_failed"]:
            self.notes.append(f"{who}: {f['connects_failed']:,} connections failed.")
        if f["disconnects"]:
            self.notes.append(f"{who}: {f['disconnects']:,} connections were closed by the broker or the network "
                              "during the run.")
        if f["expected"] and f["received"] < f["expected"]:
            missing = f["expected"] - f["received"]
            self.notes.append(f"{who}: {missing:,} of {f['expected']:,} expected deliveries did not arrive "
                              f"({missing / f['expected'] * 100:.2f}%)"
                              + (f"; the sequence numbers count {f['lost']:,} lost" if f["sequence_checked"] else "")
                              + ".")
        if f["duplicates"]:
            self.notes.append(f"{who}: {f['duplicates']:,} duplicate deliveries.")
        if f["target"] and f["achieved"] < 0.95 * f["target"]:
            self.notes.append(f"{who}: loadgen published {f['achieved']:,.0f} msg/s of the {f['target']:,.0f} asked for.")

    def idle_section(self, sc):
        self.w(f"## {sc}")
        self.w()
        doc = self.scenario_doc(sc)
        if doc:
            self.w(doc.get("description", "").split(" [run by ci/bench.sh")[0] + ".")
            self.w()
        self.w("| broker | connections held | failed | connections / s (offered) | time to connect | broker RSS before "
               "| RSS with them | RSS / connection | broker CPU ms / connection |")
        self.w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        figs = {}
        for name in self.ran:
            problem = self.run_problem(sc, name)
            f = None if problem else self.idle_fig(sc, name)
            if f is None:
                self.w(f"| {cell(self.label(name))} | **{cell(problem or 'no result')}** |" + " |" * 7)
                self.notes.append(f"{sc}, {self.label(name)}: {problem or 'no result'}.")
                continue
            figs[name] = f
            cpu = NONE if f["cpu_ms_per_conn"] is None else f"{f['cpu_ms_per_conn']:.3f}"
            self.w(f"| {cell(self.label(name))} | {fmt_int(f['held'])} | {fmt_int(f['failed'])} "
                   f"| {fmt_int(f['rate'])} ({fmt_int(f['offered'])}) | {f['connect_s']:.1f} s "
                   f"| {fmt_bytes(f['rss_before'])} | {fmt_bytes(f['rss_end'])} | {fmt_bytes(f['rss_per_conn'])} "
                   f"| {cpu} |")
            if f["failed"]:
                self.notes.append(f"{sc}, {self.label(name)}: {f['failed']:,} of {f['ok'] + f['failed']:,} "
                                  "connections failed (refused, closed, or no CONNACK within the scenario's "
                                  "30 s); the memory figure is per connection held.")
        self.w()
        ours = figs.get(OURS)
        peers = [n for n in figs if n != OURS]
        if ours and peers:
            self.w("| this broker ÷ | bytes / connection | connections / s | CPU / connection |")
            self.w("| --- | ---: | ---: | ---: |")
            for p in peers:
                f = figs[p]
                self.w(f"| {cell(self.label(p))} | {fmt_ratio(ours['rss_per_conn'], f['rss_per_conn'])} "
                       f"| {fmt_ratio(ours['rate'], f['rate'])} | {fmt_ratio(ours['cpu_ms_per_conn'], f['cpu_ms_per_conn'])} |")
            self.w()
        lg = [f["loadgen_rss_per_conn"] for f in figs.values() if f["loadgen_rss_per_conn"]]
        if lg:
            self.w(f"RSS / connection: the broker's resident memory at the end of the hold minus before the first "
                   f"connection, divided by the connections then open. Broker CPU / connection: its CPU time from "
                   f"the first connect to a second after the last, per connection made. loadgen's own memory: "
                   f"{fmt_bytes(min(lg))} to {fmt_bytes(max(lg))} per connection.")
            self.w()
        if os.path.exists(os.path.join(os.path.dirname(self.raw), f"{sc}.md")):
            self.w(f"Plots: [single-node/{sc}.md](single-node/{sc}.md).")
            self.w()

    # -- the throughput search --------------------------------------------------------

    def search_rows(self):
        rows = []
        for f in self.search:
            (sc, name, step, rate, verdict, reason, target, achieved, received, expected, p99, bcpu, lcpu,
             core0, core1, others, marginal, file, attempt) = f
            rows.append({
                "sc": sc, "name": name, "step": int(step or 0), "rate": int(float(rate or 0)), "verdict": verdict,
                "reason": reason, "achieved": float(achieved) if achieved else None,
                "received": int(received) if received else None, "expected": int(expected) if expected else None,
                "p99": float(p99) if p99 else None, "bcpu": float(bcpu) if bcpu else None,
                "lcpu": float(lcpu) if lcpu else None, "core0": float(core0) if core0 else None,
                "core1": float(core1) if core1 else None, "others": float(others) if others else None,
                "file": file, "attempt": attempt or "1",
            })
        return rows

    def final_steps(self, sc, name):
        """The verdict of each rate tried (the second attempt's, where a step ran twice)."""
        final = {}
        for row in self.search_rows():
            if row["sc"] == sc and row["name"] == name and row["verdict"] in ("pass", "fail"):
                final[row["rate"]] = row
        return final

    def search_best(self):
        best = {}
        for sc in self.scenarios:
            for name in self.ran:
                passed = [r for r in self.final_steps(sc, name).values() if r["verdict"] == "pass"]
                if passed:
                    best[(sc, name)] = max(r["rate"] for r in passed)
        return best

    def search_section(self):
        rows = self.search_rows()
        self.w("## Maximum throughput")
        self.w()
        if not rows:
            self.w("The throughput search did not run (`--no-search`).")
            self.w()
            return
        bounds = dict(x.split(":") for x in self.meta.get("search_p99_max_ms", "").split(",") if ":" in x)
        self.w(f"For each publish scenario and broker: the publish rate starts at twice the scenario's and doubles "
               f"while a step passes, then {self.meta.get('bisections', '2')} bisection(s) between the highest pass and "
               f"the lowest failure. Each step is a short run ({self.meta.get('step_duration', '?')} of publishing, "
               f"{self.meta.get('step_drain', '?')} of drain) on a fresh broker. A step fails when its p99 latency is "
               "over the bound (10 ms; fan-out 50 ms, see the notes), loadgen published under 95% of the target, "
               "fewer than 95% of the expected deliveries arrived, or a connection failed. A failure near the "
               "bounds (p99 within 5× the bound, 90% published and delivered), or during which other processes took "
               f"over {OTHERS_MAX:.0f}% of a core, is run once more and the second verdict stands, so that one stall "
               "of the machine does not decide it. Rates are messages published "
               "per second; delivered msg/s is that times the subscribers each message reaches.")
        self.w()
        self.w("| scenario | broker | highest passing msg/s | delivered msg/s | p99 ms there "
               "| broker / loadgen core there | first failure | why | broker / loadgen core there | steps |")
        self.w("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
        best = self.search_best()
        cores = lambda r: f"{fmt_pct(r['core0'])} / {fmt_pct(r['core1'])}" + (  # noqa: E731
            " ⚠" if r["others"] is not None and r["others"] > OTHERS_MAX else "")
        for sc in self.scenarios:
            if self.is_idle(sc):
                continue
            deliveries = 1
            for name in self.ran:
                r = self.results.get((sc, name))
                if r:
                    deliveries = int(r["labels"].get("deliveries_per_message", "1") or 1)
            for name in self.ran:
                mine = [r for r in rows if r["sc"] == sc and r["name"] == name]
                if not mine:
                    continue
                final = self.final_steps(sc, name)
                steps = " ".join(
                    f"{r['rate']:,}{'✓' if r['verdict'] == 'pass' else '✗' if r['verdict'] == 'fail' else '…'}"
                    + ("(2nd)" if r["attempt"] == "2" else "")
                    for r in mine)
                skipped = [r for r in mine if r["verdict"] == "skipped"]
                top = best.get((sc, name))
                at = final.get(top) if top else None
                fails = sorted((r for r in final.values() if r["verdict"] == "fail" and (top is None or r["rate"] > top)),
                               key=lambda r: r["rate"])
                fail = fails[0] if fails else None
                why = fail["reason"] if fail else ("time budget spent" if skipped else "no failure up to the cap")
                self.w(f"| {sc} | {cell(self.label(name))} | {fmt_int(top) if top else '**none**'} "
                       f"| {fmt_int(top * deliveries) if top else NONE} | {fmt_ms(at['p99']) if at else NONE} "
                       f"| {cores(at) if at else NONE} | {fmt_int(fail['rate']) if fail else NONE} | {cell(why)} "
                       f"| {cores(fail) if fail else NONE} | {steps} |")
                who = f"Throughput search, {sc}, {self.label(name)}"
                if skipped:
                    self.notes.append(f"{who}: cut short, the time budget of the searches was spent.")
                if top is None and not skipped:
                    self.notes.append(f"{who}: no rate met the bounds (lowest tried: "
                                      f"{min(final) if final else '?'} msg/s).")
                disturbed = [r for r in mine if r["others"] is not None and r["others"] > OTHERS_MAX]
                if disturbed:
                    self.notes.append(f"{who}: other processes took over {OTHERS_MAX:.0f}% of a core during the "
                                      "steps at " + ", ".join(f"{r['rate']:,}" for r in disturbed) + " msg/s.")
                if fail and fail["core1"] is not None and fail["core1"] >= 90 and (fail["core0"] or 0) < 90:
                    self.limits.setdefault("loadgen", []).append(f"{sc} {self.label(name)}")
                elif fail and fail["core0"] is not None and fail["core0"] >= 90:
                    self.limits.setdefault("broker", []).append(f"{sc} {self.label(name)}")
                elif fail:
                    self.limits.setdefault("neither", []).append(f"{sc} {self.label(name)}")
        self.w()
        ours_rows = [sc for sc in self.scenarios if (sc, OURS) in best]
        peers = [n for n in self.ran if n != OURS]
        if ours_rows and peers:
            self.w("| highest passing msg/s, this broker ÷ | " + " | ".join(self.label(p) for p in peers) + " |")
            self.w("| --- | " + " | ".join("---:" for _ in peers) + " |")
            for sc in self.scenarios:
                if self.is_idle(sc):
                    continue
                self.w(f"| {sc} | " + " | ".join(fmt_ratio(best.get((sc, OURS)), best.get((sc, p))) for p in peers) + " |")
            self.w()
        self.w("Core figures: how busy the broker's core and loadgen's core were while publishing (from "
               "`/proc/stat`, interrupts, softirqs and kernel threads included: loopback TCP work is partly done "
               f"there). ⚠: other processes took over {OTHERS_MAX:.0f}% of a core (user time) during that step.")
        self.w()
        if self.limits:
            said = {
                "broker": "the broker's core was full (90% or more) at the first failing rate",
                "loadgen": "loadgen's core was full and the broker's was not: the load generator, not the broker, "
                           "set the limit found; the broker could go further",
                "neither": "neither core was full at the first failing rate: latency grew (or messages went "
                           "missing) before either process ran out of CPU",
            }
            for key in ("broker", "loadgen", "neither"):
                if key in self.limits:
                    self.w(f"- {said[key]}: " + ", ".join(self.limits[key]) + ".")
            self.w()
        self.w("Raw step results: `single-node/raw/search/` and `single-node/raw/search.tsv`.")
        self.w()
        if "fan-out" in bounds and bounds["fan-out"] != "10":
            self.notes.insert(0, f"Fan-out's latency bound in the search is {bounds['fan-out']} ms, not 10 ms: one "
                              "message to 1,000 subscribers is a burst of 1,000 deliveries, and on two cores the last "
                              "of them arrives 10 to 15 ms after publication for every broker even at the scenario's "
                              "10 msg/s (the broker writes 1,000 sockets in turn, loadgen reads them on one core); "
                              "with 10 ms no step of any broker would pass.")

    # -- notes ---------------------------------------------------------------------------

    def disturbed_runs(self):
        """Runs in the tables (scenario runs, final search steps) during whose publishing other work took CPU."""
        n = 0
        for sc in self.scenarios:
            for name in self.ran:
                f = None if self.is_idle(sc) or self.runs.get((sc, name), ("",))[0] != "ok" else self.pub_fig(sc, name)
                if f and f["others"] is not None and f["others"] > OTHERS_MAX:
                    n += 1
                for r in self.final_steps(sc, name).values():
                    if r["others"] is not None and r["others"] > OTHERS_MAX:
                        n += 1
        return n

    def notes_section(self):
        m = self.meta
        notes = list(self.notes)
        disturbed = self.disturbed_runs()
        if disturbed:
            notes.insert(0, f"Other work on the machine took more than {OTHERS_MAX:.0f}% of a core during "
                         f"{disturbed} of the runs reported above (⚠ marks them; a disturbed scenario run or failing "
                         "search step was run once more, and these are what remained): those figures are disturbed.")
        if m.get("quick") == "1":
            notes.insert(0, "A `--quick` run: short publish phases and one bisection; a trial, not a report to keep.")
        # Known behaviours of the peers that explain a figure, stated only when the figure shows them.
        idle = next((sc for sc in self.scenarios if self.is_idle(sc)), None)
        if idle:
            f = self.idle_fig(idle, "rumqttd") if "rumqttd" in self.ran else None
            if f and f["rate"] < 2000:
                notes.append(f"rumqttd accepted at most {f['peak_per_s']:,} connections in a second, at a low CPU "
                             "use; clients queued beyond its listen backlog retried their SYN and some gave up after "
                             "30 s. Its accept loop (rumqttd 0.20, `src/server/broker.rs`) sleeps "
                             "`next_connection_delay_ms` after every accept, and a tokio sleep, even of 0 ms, waits "
                             "for the timer's next 1 ms tick: about 1,000 accepts per second at most.")
            f = self.idle_fig(idle, "mqtt-lib") if "mqtt-lib" in self.ran else None
            if f and f["failed"]:
                notes.append("mqtt-lib refuses connections beyond 10,000 per second and 10,000 per client address: "
                             "both limits are fixed in its library (`mqtt5` 0.49, `default_resource_limits` in "
                             "`src/broker/server.rs`), whatever `--max-clients` says. The idle scenario spreads "
                             "its clients over six source addresses, so only the rate limit applies here.")
        notes.append("The load generator runs on one core and both sends and receives every message, so the "
                     "throughput search measures the pair; CPU s / M msgs at the fixed rates compares the brokers' "
                     "efficiency alone.")
        notes.append("Each figure is one measurement, and a search step decides on a p99 near its bound, which is "
                     "noisy: when this script was developed, full runs an hour apart on the same machine found "
                     "maximum rates up to 30% apart for the same broker and scenario. Read search ratios within "
                     "about ±25% as equal.")
        self.w("## Notes")
        self.w()
        for n in dict.fromkeys(notes):
            self.w(f"- {n}")
        self.w()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw", help="reports/single-node/raw")
    ap.add_argument("--out", required=True, help="the Markdown file to write")
    args = ap.parse_args()
    if not os.path.isdir(args.raw):
        sys.exit(f"{args.raw}: no such folder")
    text = Report(args.raw).render()
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
