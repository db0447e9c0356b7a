#!/usr/bin/env bash
# Sets the status column of the catalogue from the cases: `tested` where a
# case checks the statement, `not-yet` where none does (rows marked
# `untestable` keep their status and reason). Run after adding cases; the
# crate's tests fail until the catalogue and the cases agree.
set -euo pipefail
cd "$(dirname "$0")/../.."
cases=$(mktemp)
trap 'rm -f "$cases"' EXIT
cargo run -q -p conformance -- --list-cases > "$cases"
python3 - "$cases" <<'PY'
import sys
checked = {}
for line in open(sys.argv[1]):
    version, name, statements = line.rstrip("\n").split("\t")
    for s in filter(None, statements.split(",")):
        checked.setdefault((version, s), []).append(name)
for version in ("3.1.1", "5.0"):
    path = f"conformance/catalogue/{version}.tsv"
    out = []
    for line in open(path, encoding="utf-8"):
        row = line.rstrip("\n")
        if not row or row.startswith("#"):
            out.append(row)
            continue
        fields = row.split("\t")
        while len(fields) < 4:
            fields.append("")
        sid, status = fields[0], fields[1]
        if (version, sid) in checked:
            fields[1] = "tested"
            if status == "untestable":
                print(f"{version} {sid}: marked untestable but checked by {checked[(version, sid)]}; now tested", file=sys.stderr)
                fields[3] = ""
        elif status == "tested":
            fields[1] = "not-yet"
        out.append("\t".join(fields[:4]))
    open(path, "w", encoding="utf-8").write("\n".join(out) + "\n")
PY
cargo run -q -p conformance -- --catalogue
