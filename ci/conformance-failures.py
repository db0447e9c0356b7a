#!/usr/bin/env python3
"""Lists the failing cases of a conformance report run, per case and version,
with the brokers that fail each one and their detail lines.

Usage: ci/conformance-failures.py [--dir reports/conformance] [--peers N]
                                  [--broker NAME] [--names] [--no-detail]
  --dir DIR      folder of <broker>.json files written by ci/conformance-report.sh
  --peers N      only (case, version) pairs failed by exactly N brokers
  --broker NAME  only pairs that NAME fails (with --peers 1: NAME alone fails them)
  --names        print `VERSION CASE` lines only (e.g. to re-run them)
  --no-detail    leave out the detail lines

The output groups pairs by how many brokers fail them (most first), then by
version and case name, and ends with the count of pairs per number of brokers
and, per broker, the pairs it alone fails.
"""

import argparse
import collections
import glob
import json
import os
import sys

ORDER = ["broker", "mosquitto", "rumqttd", "rmqtt", "mqtt-lib"]


def load(directory):
    """broker name -> {(version, case): case dict}"""
    results = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        name = report.get("broker") or os.path.splitext(os.path.basename(path))[0]
        results[name] = {(c["version"], c["name"]): c for c in report["cases"]}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reports", "conformance")
    parser.add_argument("--dir", default=default_dir, help="folder of <broker>.json files (default: reports/conformance)")
    parser.add_argument("--peers", type=int, metavar="N", help="only pairs failed by exactly N brokers")
    parser.add_argument("--broker", metavar="NAME", help="only pairs that NAME fails")
    parser.add_argument("--names", action="store_true", help="print `VERSION CASE` lines only")
    parser.add_argument("--no-detail", action="store_true", help="leave out the detail lines")
    args = parser.parse_args()

    results = load(args.dir)
    if not results:
        sys.exit(f"error: no <broker>.json in {args.dir}")
    brokers = sorted(results, key=lambda b: (ORDER.index(b) if b in ORDER else len(ORDER), b))
    if args.broker and args.broker not in results:
        sys.exit(f"error: no results for {args.broker}; have {', '.join(brokers)}")

    failing = collections.defaultdict(list)  # (version, case) -> [broker]
    for broker in brokers:
        for key, case in results[broker].items():
            if case["result"] == "fail":
                failing[key].append(broker)

    per_count = collections.Counter(len(b) for b in failing.values())
    alone = collections.Counter(b[0] for b in failing.values() if len(b) == 1)
    keys = sorted(failing, key=lambda k: (-len(failing[k]), k[0], k[1]))
    keys = [k for k in keys if args.peers is None or len(failing[k]) == args.peers]
    keys = [k for k in keys if args.broker is None or args.broker in failing[k]]

    for version, name in keys:
        if args.names:
            print(version, name)
            continue
        statements = next(iter(results[b][(version, name)] for b in failing[(version, name)]))["statements"]
        print(f"{version} {name} [{', '.join(statements)}]: fails on {', '.join(failing[(version, name)])}")
        if args.no_detail:
            continue
        for broker in failing[(version, name)]:
            for i, line in enumerate(results[broker][(version, name)]["detail"].splitlines() or [""]):
                print(f"    {broker if i == 0 else '':<10} {line}")
    if args.names:
        return
    print()
    print(f"{len(keys)} of {len(failing)} failing (case, version) pairs listed")
    for n in sorted(per_count, reverse=True):
        print(f"  failed by {n} broker(s): {per_count[n]}")
    for broker in brokers:
        print(f"  {broker}: fails {sum(1 for b in failing.values() if broker in b)}, alone {alone[broker]}")


if __name__ == "__main__":
    main()
