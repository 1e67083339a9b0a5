#!/usr/bin/env bash
# What the rec_id and the experiment lookup cost the per-customer route:
# GET /v1/customers/{id}/recommendations?n=10 on three servers in the same
# run, runs alternating so a noisy neighbour weighs on each alike:
#   base  BASE_BIN (e.g. main's binary): no rec_id, no experiments
#   recid NEW_BIN without --experiments: a rec_id and "experiment":null
#   exp   NEW_BIN --experiments: every customer in a two-variant experiment
#         whose variants both answer as the route does (the lookup, the
#         assignment hash, the tag and the attribution hook, same items)
#
#   bench/experiments_bench.sh BASE_BIN NEW_BIN [--runs R] [--duration S]
#                              [--data FILE]
#
# Servers on core 0 (1 thread), wrk on core 1 (1 thread, 32 connections,
# random customers of the model via wrk/random_customer.lua). Prints one
# line per run and the medians with their ratios to base. Reaches only
# 127.0.0.1; stops what it starts; removes its work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 2; }
BASE=$(realpath "$1") NEW=$(realpath "$2")
shift 2
RUNS=3 DURATION=10
DATA="$ROOT/data/demo/online-retail-sample.csv"
COLUMNS="customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--data) DATA=$2; shift 2 ;;
	*) echo "experiments_bench: unknown option $1" >&2; exit 2 ;;
	esac
done
command -v wrk >/dev/null || { echo "experiments_bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/shopkeeper-expbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT

"$NEW" train --interactions "$DATA" --columns "$COLUMNS" --out "$WORK/model" --quiet 2>/dev/null
"$NEW" inspect "$WORK/model" --list customers | grep -E '^[A-Za-z0-9._-]+$' >"$WORK/customers.txt"
cat >"$WORK/exp.json" <<'EOF'
{"experiments": [{"name": "bench", "salt": "b1", "routes": ["customer", "item", "basket"],
  "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}]}
EOF

start() { # name bin args...: sets P_name (not in a subshell: PIDS must stay ours)
	local name=$1 bin=$2
	shift 2
	taskset -c 0 "$bin" serve --model "$WORK/model" --state "$WORK/state-$name" \
		--listen 127.0.0.1:0 --threads 1 "$@" >/dev/null 2>"$WORK/$name.log" &
	PIDS+=($!)
	local port=""
	for _ in $(seq 100); do
		port=$(grep -o 'on port [0-9]*' "$WORK/$name.log" | grep -o '[0-9]*$' || true)
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || { cat "$WORK/$name.log" >&2; exit 1; }
	printf -v "P_$name" '%s' "$port"
}
start base "$BASE"
start recid "$NEW"
start exp "$NEW" --experiments "$WORK/exp.json"
# the servers answer as labelled
curl -sf "http://127.0.0.1:$P_base/v1/customers/$(head -1 "$WORK/customers.txt")/recommendations" |
	grep -vq rec_id
curl -sf "http://127.0.0.1:$P_recid/v1/customers/$(head -1 "$WORK/customers.txt")/recommendations" |
	grep -q '"experiment":null'
curl -sf "http://127.0.0.1:$P_exp/v1/customers/$(head -1 "$WORK/customers.txt")/recommendations" |
	grep -q '"experiment":{"name":"bench"'

echo "# $(wc -l <"$WORK/customers.txt") customers; load before: $(uptime | sed 's/.*load average: //')"
for r in $(seq "$RUNS"); do
	for name in base recid exp; do
		port_var=P_$name
		taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" --latency -s "$ROOT/bench/wrk/random_customer.lua" \
			"http://127.0.0.1:${!port_var}" -- "$WORK/customers.txt" "$r" >"$WORK/wrk.out" 2>&1
		rps=$(grep -o 'Requests/sec: *[0-9.]*' "$WORK/wrk.out" | grep -o '[0-9.]*$')
		p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.out")
		echo "run $r $name $rps req/s p99 $p99"
		echo "$name $rps" >>"$WORK/all"
	done
done
echo "# load after: $(uptime | sed 's/.*load average: //')"
python3 - "$WORK/all" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, rps = line.split()
    runs.setdefault(name, []).append(float(rps))
base = statistics.median(runs["base"])
for name in ("base", "recid", "exp"):
    m = statistics.median(runs[name])
    print("median %-5s %8.0f req/s  %.3fx base  (runs: %s)"
          % (name, m, m / base, ", ".join("%.0f" % v for v in runs[name])))
PY
