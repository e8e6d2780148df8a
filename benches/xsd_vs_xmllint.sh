#!/usr/bin/env bash
# The XSD pass against libxml2, side by side: the same documents (the valid XML samples and
# mutations of them, COUNT in all), one process and one core each, documents per second and the
# verdict of each document, in three rounds (medians). Called by benches/run.sh; standalone:
#   benches/xsd_vs_xmllint.sh target/release/aci-gateway [COUNT] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?the aci-gateway binary}
COUNT=${2:-2000}
WORK=${3:-target/bench-xsd}
XSD=schemas/aci-manifest-2.xsd
command -v xmllint >/dev/null || { echo "xmllint is needed (apt-get install libxml2-utils)" >&2; exit 1; }
pin=""
command -v taskset >/dev/null && pin="taskset -c 1"
rm -rf "$WORK" && mkdir -p "$WORK/docs"
# Mutations that keep a document well-formed: some stay valid, most break one facet.
python3 - "$WORK/docs" "$COUNT" <<'PY'
import glob, os, random, sys
out, count = sys.argv[1], int(sys.argv[2])
samples = [open(f).read() for f in sorted(glob.glob("schemas/examples/*.xml")) if "large" not in f]
mutations = [
    ("<Lrn>", "<Lrn>X"), ("<HsCode>", "<HsCode>9"), ("<Country>", "<Country>Q"),
    ("<GrossMassKg>", "<GrossMassKg>-"), ("<TransportMode>", "<TransportMode>X"),
    ("<NumberOfPackages>", "<NumberOfPackages>0"), ("</Declarant>", "<Extra/></Declarant>"),
    ("<Name>", "<Name>  spaced  "), ("<Sequence>1<", "<Sequence>01<"), ("", ""),
]
rng = random.Random(1)
for i in range(count):
    text = samples[i % len(samples)]
    old, new = mutations[rng.randrange(len(mutations))]
    if old:
        text = text.replace(old, new, 1)
    open(os.path.join(out, f"doc-{i:05}.xml"), "w").write(text)
PY
files=("$WORK"/docs/*.xml)
# Three rounds, the two tools in turn; the medians: one burst of noise on a shared machine
# spoils a round, not the figure. Every round's verdicts are written; the last are compared.
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.3f", e - s }'; }
ours_rounds=() theirs_rounds=()
for _ in 1 2 3; do
  start=$(date +%s.%N)
  $pin "$BIN" validate --schema-only --jobs 1 --json "$WORK/docs" > "$WORK/ours.jsonl" || true
  ours_rounds+=("$(elapsed "$start")")
  start=$(date +%s.%N)
  $pin xmllint --noout --nonet --schema "$XSD" "${files[@]}" 2> "$WORK/xmllint.txt" || true
  theirs_rounds+=("$(elapsed "$start")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
ours_s=$(median "${ours_rounds[@]}")
theirs_s=$(median "${theirs_rounds[@]}")
echo "   rounds (s): ours ${ours_rounds[*]}, xmllint ${theirs_rounds[*]}" >&2
python3 - "$WORK" "${#files[@]}" "$ours_s" "$theirs_s" "${ours_rounds[*]}" "${theirs_rounds[*]}" <<'PY'
import json, sys
work, n, ours_s, theirs_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rounds = {"ours_seconds": [float(x) for x in sys.argv[5].split()],
          "xmllint_seconds": [float(x) for x in sys.argv[6].split()]}
ours = {}
for line in open(f"{work}/ours.jsonl"):
    v = json.loads(line)
    ours[v["file"].rsplit("/", 1)[-1]] = v["verdict"] == "valid"
theirs = {}
for line in open(f"{work}/xmllint.txt"):
    line = line.strip()
    if line.endswith(" validates"):
        theirs[line[: -len(" validates")].rsplit("/", 1)[-1]] = True
    elif line.endswith(" fails to validate"):
        theirs[line[: -len(" fails to validate")].rsplit("/", 1)[-1]] = False
disagree = sorted(f for f in ours if theirs.get(f) != ours[f])
report = {
    "documents": n, "valid": sum(ours.values()),
    "ours_docs_per_second": round(n / ours_s), "xmllint_docs_per_second": round(n / theirs_s),
    "ratio": round(theirs_s / ours_s, 3), "disagreements": len(disagree),
    "first_disagreements": disagree[:5], "rounds": rounds,
}
print(json.dumps(report))
PY
