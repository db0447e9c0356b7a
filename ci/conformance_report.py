#!/usr/bin/env python3
"""Merges the conformance suite's runs per broker and writes the peer report.

Called by ci/conformance-report.sh with its work folder, which holds:
  cases.tsv    `conformance --list-cases`: version, case, statements
  brokers.tsv  name, label, version, state, note, ports, how installed, configuration
  runs.tsv     name, protocol, port, json, exit code, outcome, note
  reruns.tsv   name, protocol, case, json, crashed (0/1), exit status
Writes <out-dir>/<broker>.json (a RunReport plus the broker's metadata) and
the Markdown report. Can also re-render the Markdown from the JSON files
alone: `conformance_report.py --render-only --out-dir D --markdown F`.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import subprocess
import sys

ORDER = ["broker", "mosquitto", "rumqttd", "rmqtt", "mqtt-lib"]
VERSIONS = ["3.1.1", "5.0"]
# The package (crate or Debian package) of each broker, as ci/install-peers.sh names it.
PACKAGE = {"rmqtt": "rmqttd", "mqtt-lib": "mqttv5-cli"}
RANK = {"fail": 2, "pass": 1, "skip": 0}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def version_name(protocol):
    return "5.0" if protocol in ("5", "5.0") else "3.1.1"


def merge(work, name, listed):
    """The cases of one broker, from its runs and re-runs, and its run notes."""
    cases = {}
    runs = []
    for row in read_tsv(os.path.join(work, "runs.tsv"), 7):
        rname, protocol, port, path, rc, outcome, note = row
        if rname != name:
            continue
        version = version_name(protocol)
        runs.append({"protocol": version, "port": port, "exit": rc, "outcome": outcome, "note": note})
        report = load_json(path) if path else None
        if report is not None and outcome in ("ok", "crashed", "stopped-answering"):
            for case in report["cases"]:
                if outcome in ("crashed", "stopped-answering") and case["result"] == "fail":
                    case["detail"] = "[not re-run; the broker went down during this run, so this failure may follow from that] " + case["detail"]
                cases[(case["version"], case["name"])] = case
        else:
            why = note or f"the suite run ended without results ({outcome})"
            for v, cname, statements in listed:
                if v == version:
                    cases[(v, cname)] = {
                        "name": cname,
                        "version": v,
                        "statements": statements,
                        "result": "fail",
                        "detail": why,
                        "millis": 0,
                    }
    for rname, protocol, cname, path, crashed, status in read_tsv(os.path.join(work, "reruns.tsv"), 6):
        if rname != name:
            continue
        version = version_name(protocol)
        key = (version, cname)
        report = load_json(path)
        alone = None
        if report is not None:
            alone = next((c for c in report["cases"] if c["name"] == cname and c["version"] == version), None)
        if crashed in ("1", "2"):
            base = alone or cases.get(key) or {"name": cname, "version": version, "statements": [], "millis": 0}
            base = dict(base)
            base["result"] = "fail"
            what = (
                f"the broker crashed (exit status {status}) while this case ran alone"
                if crashed == "1"
                else "the broker stopped answering CONNECT (its process still running) after this case ran alone"
                + (f"; its log: {status}" if status else "")
            )
            said = alone.get("detail") if alone else ""
            base["detail"] = what + (f"; the case said: {said}" if said else f"; the case itself {alone['result']}ed" if alone else "")
            cases[key] = base
        elif alone is not None:
            alone = dict(alone)
            if alone["detail"]:
                alone["detail"] = "[re-run alone] " + alone["detail"]
            cases[key] = alone
    ordered = sorted(cases.values(), key=lambda c: (VERSIONS.index(c["version"]) if c["version"] in VERSIONS else 9, c["name"]))
    return ordered, runs


def totals(cases, version=None):
    count = collections.Counter(c["result"] for c in cases if version is None or c["version"] == version)
    return count["pass"], count["fail"], count["skip"]


def statement_results(cases):
    out = {}
    for case in cases:
        for statement in case["statements"]:
            key = (case["version"], statement)
            if key not in out or RANK.get(case["result"], 0) > RANK.get(out[key], 0):
                out[key] = case["result"]
    return out


def catalogue():
    """(version, id) -> paraphrase, and the standard's order of ids per version."""
    text, order = {}, {}
    for version in VERSIONS:
        ids = [r[0] for r in read_tsv(os.path.join(ROOT, "conformance", "catalogue", f"ids-{version}.tsv"), 2)]
        order[version] = {sid: i for i, sid in enumerate(ids)}
        for row in read_tsv(os.path.join(ROOT, "conformance", "catalogue", f"{version}.tsv"), 4):
            if row[0].startswith("#"):
                continue
            text[(version, row[0])] = row[2]
    return text, order


def known_failures():
    out = {}
    path = os.path.join(ROOT, "conformance", "known-failures.txt")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) >= 2:
                out[(parts[0], parts[1])] = parts[2] if len(parts) > 2 else ""
    return out


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def shorten(text, width):
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "?"
    uname = platform.uname()
    return f"{uname.system} {uname.release} {uname.machine}, {cpu}, {os.cpu_count()} cores, {memory} memory; {rustc}"


def peer_failures(status_dir):
    """Peers whose install failed: name -> (note, tail)."""
    out = {}
    if not status_dir or not os.path.isdir(status_dir):
        return out
    for entry in sorted(os.listdir(status_dir)):
        if not entry.endswith(".status"):
            continue
        peer = entry[: -len(".status")]
        fields = dict(
            line.rstrip("\n").split("=", 1) for line in open(os.path.join(status_dir, entry)) if "=" in line
        )
        if fields.get("status") == "failed":
            tail_path = os.path.join(status_dir, peer + ".tail")
            tail = open(tail_path, encoding="utf-8", errors="replace").read() if os.path.exists(tail_path) else ""
            out[peer] = (fields.get("note", ""), tail)
    return out


def write_json(args):
    listed = [(v, n, [s for s in st.split(",") if s]) for v, n, st in read_tsv(os.path.join(args.work, "cases.tsv"), 3)]
    brokers = read_tsv(os.path.join(args.work, "brokers.tsv"), 8)
    for old in os.listdir(args.out_dir):
        if old.endswith(".json"):
            os.remove(os.path.join(args.out_dir, old))
    for name, label, version, state, note, ports, how, config in brokers:
        cases, runs = (merge(args.work, name, listed) if state == "ran" else ([], []))
        passed, failed, skipped = totals(cases)
        report = {
            "target": ports,
            "cases": cases,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "broker": name,
            "label": label,
            "broker_version": version,
            "state": state,
            "note": note,
            "installed": how,
            "configuration": config,
            "runs": runs,
            "generated": args.date,
        }
        with open(os.path.join(args.out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


def render(args):
    reports = {}
    for entry in os.listdir(args.out_dir):
        if entry.endswith(".json"):
            report = load_json(os.path.join(args.out_dir, entry))
            if report and "broker" in report:
                reports[report["broker"]] = report
    names = [n for n in ORDER if n in reports] + sorted(n for n in reports if n not in ORDER)
    ran = [n for n in names if reports[n]["state"] == "ran"]
    text, order = catalogue()
    known = known_failures()
    date = args.date or next((r.get("generated") for r in reports.values() if r.get("generated")), "")
    out = []
    w = out.append

    w("# MQTT conformance: this broker and its peers")
    w("")
    w("The conformance suite (`conformance` crate) run against this repository's broker and against peer")
    w("brokers started on loopback with their most permissive configuration. Generated; do not edit by hand.")
    w("Each case where a peer differs from the suite was checked against the statement text; the verdicts")
    w("(peer deviation, or a case corrected) are in [conformance-differences.md](conformance-differences.md).")
    w("")
    w(f"- Command: `{args.command}`")
    w(f"- Date: {date}")
    w(f"- Machine: {machine()}")
    if args.suite_args:
        w(f"- Suite: `target/release/conformance --host 127.0.0.1 --port PORT --protocol 3.1.1|5 --json FILE {args.suite_args}`,"
          f" once per broker and protocol version" + (f", each run killed after {args.run_timeout} s" if args.run_timeout else ""))
    if args.elapsed:
        w(f"- Wall time of the report run: {int(args.elapsed) // 60} min {int(args.elapsed) % 60} s")
    listed_count = collections.Counter()
    for r in reports.values():
        if r["state"] == "ran":
            for c in r["cases"]:
                listed_count[c["version"]] += 1
            break
    if listed_count:
        w(f"- Cases: {sum(listed_count.values())} ("
          + ", ".join(f"{listed_count[v]} for MQTT {v}" for v in VERSIONS) + ")")
    w("")

    w("## Brokers")
    w("")
    w("| broker | version | installed | listener | configuration | state |")
    w("| --- | --- | --- | --- | --- | --- |")
    for n in names:
        r = reports[n]
        state = "ran" if r["state"] == "ran" else f"**{r['state']}**: {r['note']}"
        notes = [f"{x['protocol']}: {x['outcome']} — {x['note']}" for x in r.get("runs", []) if x["outcome"] != "ok" or x["note"]]
        if notes:
            state += "; " + "; ".join(notes)
        w(f"| {cell(r['label'])} | {cell(r['broker_version'] or '?')} | {cell(r['installed'] or '')} | "
          f"{cell(r['target'] or '—')} | {cell(r['configuration'])} | {cell(shorten(state, 600))} |")
    w("")
    if any(x["outcome"] in ("crashed", "stopped-answering") for n in names for x in reports[n].get("runs", [])):
        w("A broker that crashed or stopped answering CONNECT during a run was restarted, and the cases that")
        w("failed in that run were run again one at a time on a working broker: their results below are from")
        w("those runs (marked \"[re-run alone]\"), and a case after which the broker went down again says so.")
        w("")
    failures = peer_failures(args.peers_status)
    missing = [n for n in names if reports[n]["state"] == "not-built"]
    if not failures and not missing:
        w("Every peer built (the installed column says how, and which locked dependencies had to be updated).")
        w("")
    if failures or missing:
        w("### Peers that did not build")
        w("")
        for peer, (note, tail) in failures.items():
            w(f"- **{peer}**: {note}")
            if tail.strip():
                w("")
                w("  <details><summary>last lines of the build output</summary>")
                w("")
                w("  ```")
                for line in tail.rstrip().splitlines()[-30:]:
                    w("  " + line)
                w("  ```")
                w("  </details>")
                w("")
        for n in missing:
            if PACKAGE.get(n, n) not in failures:
                w(f"- **{reports[n]['label']}**: {reports[n]['note']}")
        w("")

    w("## Totals")
    w("")
    w("Cases, and statements (a statement's result is the worst of the cases that check it: fail > pass > skip).")
    w("")
    w("| broker | MQTT | cases passed | failed | skipped | statements passed | failed | skipped |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in ran:
        r = reports[n]
        sres = statement_results(r["cases"])
        for v in VERSIONS:
            p, f, s = totals(r["cases"], v)
            sc = collections.Counter(res for (sv, _), res in sres.items() if sv == v)
            w(f"| {cell(r['label'])} | {v} | {p} | {f} | {s} | {sc['pass']} | {sc['fail']} | {sc['skip']} |")
    w("")

    symbol = {"pass": "pass", "fail": "**FAIL**", "skip": "skip"}
    results = {n: statement_results(reports[n]["cases"]) for n in ran}
    case_counts = collections.Counter()
    if ran:
        for c in reports[ran[0]]["cases"]:
            for s in c["statements"]:
                case_counts[(c["version"], s)] += 1
    for v in VERSIONS:
        ids = sorted({sid for n in ran for (sv, sid) in results[n] if sv == v},
                     key=lambda sid: (order.get(v, {}).get(sid, 10**6), sid))
        if not ids:
            continue
        w(f"## Statement matrix, MQTT {v}")
        w("")
        w("| statement | " + " | ".join(cell(reports[n]["label"].split(" (")[0]) for n in ran) + " | cases | what it says |")
        w("| --- | " + " | ".join("---" for _ in ran) + " | ---: | --- |")
        for sid in ids:
            cells = [symbol.get(results[n].get((v, sid)), "—") for n in ran]
            says = text.get((v, sid), "(not in the catalogue)")
            w(f"| {sid} | " + " | ".join(cells) + f" | {case_counts[(v, sid)]} | {cell(shorten(says, 110))} |")
        w("")

    if "broker" in ran:
        lines = []
        for (v, sid), res in sorted(results["broker"].items(), key=lambda kv: (kv[0][0], order.get(kv[0][0], {}).get(kv[0][1], 10**6))):
            if res != "fail":
                continue
            passing = [reports[n]["label"].split(" (")[0] for n in ran if n != "broker" and results[n].get((v, sid)) == "pass"]
            if passing:
                lines.append(f"- MQTT {v} {sid}: passed by {', '.join(passing)}")
        if lines:
            w("## Statements this broker fails and a peer passes")
            w("")
            out.extend(lines)
            w("")
        peers = [n for n in ran if n != "broker"]
        lines = []
        for (v, sid), res in sorted(results["broker"].items(), key=lambda kv: (kv[0][0], order.get(kv[0][0], {}).get(kv[0][1], 10**6))):
            if res == "pass" and len(peers) >= 2 and all(results[n].get((v, sid)) == "fail" for n in peers):
                lines.append(f"- MQTT {v} {sid}: {cell(shorten(text.get((v, sid), ''), 110))}")
        if lines:
            w("## Statements this broker passes and every peer fails")
            w("")
            w("Worth a second look: either the peers share a gap, or the case asks more than the statement does.")
            w("")
            out.extend(lines)
            w("")

    w("## Failing cases")
    w("")
    for n in ran:
        r = reports[n]
        failing = [c for c in r["cases"] if c["result"] == "fail"]
        w(f"### {r['label']}: {len(failing)} failing")
        w("")
        for c in failing:
            note = ""
            if n == "broker" and (c["version"], c["name"]) in known:
                note = f" (known failure: {known[(c['version'], c['name'])]})"
            ids = ", ".join(c["statements"]) or "no statement id"
            w(f"- {c['version']} `{c['name']}` ({ids}){cell(note)}: {cell(shorten(c['detail'], 400))}")
        if not failing:
            w("None.")
        w("")

    w("## Skipped cases, by reason")
    w("")
    if not any(c["result"] == "skip" for n in ran for c in reports[n]["cases"]):
        w("None.")
    for n in ran:
        r = reports[n]
        reasons = collections.Counter((c["version"], shorten(c["detail"], 200)) for c in r["cases"] if c["result"] == "skip")
        if not reasons:
            continue
        w(f"### {r['label']}")
        w("")
        for (v, reason), count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            w(f"- {v}, {count} case{'s' if count != 1 else ''}: {cell(reason)}")
        w("")

    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip() + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--command", default="ci/conformance-report.sh")
    parser.add_argument("--peers-status")
    parser.add_argument("--suite-args", default="")
    parser.add_argument("--elapsed", type=int, default=0)
    parser.add_argument("--run-timeout", type=int, default=0)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    args.date = "" if args.render_only else datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.render_only:
        if not args.work:
            sys.exit("--work is needed unless --render-only")
        write_json(args)
    render(args)
    print(f"wrote {args.markdown}" + ("" if args.render_only else f" and {args.out_dir}/*.json"))


if __name__ == "__main__":
    main()
