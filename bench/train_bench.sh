#!/bin/sh
# Training benchmark: shopkeeper's trainer against a numpy/scipy peer
# (bench/peer_numpy.py) on the same data, in the same run.
#
#   bench/train_bench.sh [--data FILE] [--columns MAP] [--generated ITEMS]
#                        [--customers N] [--interactions N] [--reps N]
#                        [--ease-reps N] [--algos cosine,jaccard,lift,ease] [--neighbors K]
#                        [--peer-ease-solver cho|inv|potri] [--work DIR]
#
# With neither --data nor --generated it runs both defaults: the Online
# Retail file (../shared/data/online-retail.csv.gz next to the repository,
# or $RETAIL) and a generated catalog of 20,000 items (100,000 customers,
# 2,000,000 interactions: 5 customers and 100 interactions per item unless
# --customers/--interactions say otherwise).
#
# Every repetition runs, per algorithm, ours then the peer, so both see the
# same machine load. --ease-reps (default: --reps) limits EASE's repetitions
# on the generated catalog, where one EASE run inverts a 20,000 x 20,000
# matrix and takes minutes. Both train the same model: K neighbours (default 100),
# default event weights, a 30-day half-life, EASE with lambda 200. Reported:
# medians over the repetitions of
#   total    read the CSV through top-K (ours: ingest + histories + gram +
#            neighbors; our model write is left out, the peer writes nothing)
#   compute  the same without reading the CSV
# the ratio peer/ours for each, and how far the two agree: the mean overlap
# of each item's top-10 neighbours, and the share of items whose top-10
# lists are identical. Raw figures: WORK/results.jsonl.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin"
PY=/usr/bin/python3
RETAIL_COLS=customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice

data="" columns="" generated="" customers="" interactions="" reps=3
algos=cosine,jaccard,lift,ease neighbors=100 solver=cho work="" ease_reps=""
usage() { sed -n '2,/^set/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--data) data=$2; shift 2 ;;
	--columns) columns=$2; shift 2 ;;
	--generated) generated=$2; shift 2 ;;
	--customers) customers=$2; shift 2 ;;
	--interactions) interactions=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--ease-reps) ease_reps=$2; shift 2 ;;
	--algos) algos=$2; shift 2 ;;
	--neighbors) neighbors=$2; shift 2 ;;
	--peer-ease-solver) solver=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "train_bench: unknown option $1" >&2; usage ;;
	esac
done

if [ -z "$data" ] && [ -z "$generated" ]; then
	data=${RETAIL:-$ROOT/../shared/data/online-retail.csv.gz}
	[ -f "$data" ] || data=$ROOT/../../shared/data/online-retail.csv.gz
	[ -f "$data" ] || { echo "train_bench: no Online Retail file; pass --data FILE" >&2; exit 2; }
	generated=20000
fi
"$PY" -c 'import numpy, scipy' 2>/dev/null || {
	echo "train_bench: needs Debian's python3-numpy and python3-scipy:" >&2
	echo "  apt-get install python3-numpy python3-scipy" >&2
	exit 2
}
[ -x "$BIN/shopkeeper" ] && [ -x "$BIN/shopkeeper-gen" ] || make -C "$ROOT" -j2 all >/dev/null
[ -n "$work" ] || work=$(mktemp -d /tmp/train_bench.XXXXXX)
mkdir -p "$work"
results=$work/results.jsonl
: >"$results"
# A copy of the trainer, so a rebuild during a long run changes nothing.
cp "$BIN/shopkeeper" "$work/shopkeeper"

echo "machine: $(nproc) cores, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "numpy/scipy: $("$PY" -c 'import numpy, scipy; print(numpy.__version__, scipy.__version__)')"
echo "work directory: $work"

# run_one LABEL FILE COLUMNS: every repetition of every algorithm, both sides.
run_one() {
	label=$1 file=$2 cols=$3 most=${4:-$reps}
	colarg=""
	[ -n "$cols" ] && colarg="--columns $cols"
	rep=1
	while [ "$rep" -le "$reps" ]; do
		for algo in $(echo "$algos" | tr ',' ' '); do
			[ "$algo" = ease ] && [ "$rep" -gt "$most" ] && continue
			dump_ours="" dump_peer=""
			if [ "$rep" = 1 ]; then
				dump_ours="--dump-neighbors $work/$label-ours-$algo.tsv"
				dump_peer="--dump $work/$label-peer-$algo.tsv"
			fi
			# --no-tune: the plain fit with the peer's parameters (tuning
			# would search others first).
			# shellcheck disable=SC2086
			"$work/shopkeeper" train --no-tune --interactions "$file" $colarg --algo "$algo" \
				--neighbors "$neighbors" --out "$work/model-$label-$algo" $dump_ours \
				2>"$work/ours.log" || { cat "$work/ours.log" >&2; exit 1; }
			line=$(grep '^seconds' "$work/ours.log")
			# shellcheck disable=SC2086
			peer=$("$PY" "$ROOT/bench/peer_numpy.py" --interactions "$file" $colarg \
				--algo "$algo" --neighbors "$neighbors" --ease-solver "$solver" $dump_peer)
			printf '{"data":"%s","algo":"%s","rep":%s,"ours":"%s","peer":%s}\n' \
				"$label" "$algo" "$rep" "$line" "$peer" >>"$results"
			echo "  $label rep $rep $algo: ours ${line#seconds    }; peer $(echo "$peer" |
				sed 's/.*"seconds": //; s/}}$/}/')"
		done
		rep=$((rep + 1))
	done
}

if [ -n "$data" ]; then
	cols=$columns label=$(basename "$data" | sed 's/\..*//')
	if [ -z "$cols" ] && (gzip -dcf "$data" | head -1 | grep -q StockCode); then
		cols=$RETAIL_COLS
	fi
	echo "== $(basename "$data") ($reps repetitions)"
	run_one "$label" "$data" "$cols"
fi
if [ -n "$generated" ]; then
	customers=${customers:-$((generated * 5))}
	interactions=${interactions:-$((generated * 100))}
	gen=$work/generated-$generated-$customers-$interactions.csv
	[ -f "$gen" ] || "$BIN/shopkeeper-gen" --items "$generated" --customers "$customers" \
		--interactions "$interactions" --out "$gen"
	echo "== generated: $generated items, $customers customers, $interactions interactions ($reps repetitions)"
	run_one "generated-$generated" "$gen" "" "${ease_reps:-$reps}"
fi

"$PY" - "$work" <<'EOF'
import json, os, re, statistics, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(work, "results.jsonl"))]

def ours_secs(line):
    s = dict((k, float(v)) for k, v in re.findall(r"(\w+) ([0-9.]+)", line))
    compute = s["histories"] + s["gram"] + s["neighbors"]
    return s["ingest"] + compute, compute

def top10(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        item, _, rest = line.rstrip("\n").partition("\t")
        out[item] = [e.rsplit(":", 1)[0] for e in rest.split(",") if e][:10]
    return out

def agreement(label, algo):
    a, b = (os.path.join(work, "%s-%s-%s.tsv" % (label, who, algo)) for who in ("ours", "peer"))
    if not (os.path.exists(a) and os.path.exists(b)):
        return "", ""
    A, B = top10(a), top10(b)
    overlaps, same = [], 0
    for item in set(A) | set(B):
        x, y = A.get(item, []), B.get(item, [])
        if not x and not y:
            continue
        overlaps.append(len(set(x) & set(y)) / max(len(x), len(y)))
        same += x == y
    n = len(overlaps) or 1
    return "%.4f" % (sum(overlaps) / n), "%.1f%%" % (100.0 * same / n)

noise = []
print()
print("medians (seconds); ratio = peer / ours; agreement of top-10 neighbours")
print("| data | algorithm | ours total | peer total | ratio | ours compute | peer compute | ratio | top-10 overlap | identical lists |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label in dict.fromkeys(r["data"] for r in rows):
    for algo in dict.fromkeys(r["algo"] for r in rows if r["data"] == label):
        rs = [r for r in rows if r["data"] == label and r["algo"] == algo]
        ot = statistics.median(ours_secs(r["ours"])[0] for r in rs)
        oc = statistics.median(ours_secs(r["ours"])[1] for r in rs)
        pt = statistics.median(r["peer"]["seconds"]["total"] for r in rs)
        pc = statistics.median(r["peer"]["seconds"]["compute"] for r in rs)
        ov, same = agreement(label, algo)
        print("| %s | %s | %.2f | %.2f | %.1fx | %.2f | %.2f | %.1fx | %s | %s |" % (
            label, algo, ot, pt, pt / ot, oc, pc, pc / oc, ov, same))
        spread = lambda v: (max(v) - min(v)) / statistics.median(v) * 100
        noise.append("%s %s: ours +-%.0f%%, peer +-%.0f%% (compute, max-min over median, %d runs)" % (
            label, algo, spread([ours_secs(r["ours"])[1] for r in rs]) / 2,
            spread([r["peer"]["seconds"]["compute"] for r in rs]) / 2, len(rs)))
print()
print("noise:")
for n in noise:
    print("  " + n)
EOF
