#!/usr/bin/env bash
# Event log benchmark (issue 13): `shopkeeper serve --event-log` replicas
# (one, or --replicas N on the same machine) on a redis-server of their own
# (appendonly yes, appendfsync always, files under /var/tmp, on disk),
# measuring
#   1. durable events/s acknowledged through the log: wrk posting batches of
#      --batch events to replica 1; every 200 means appended, fsynced by
#      Redis and applied to that replica's state (read your writes);
#   2. applier lag at --rate events/s (bench/event_pacer.c, paced, in
#      batches, to replica 1): each replica's histogram
#      shopkeeper_event_log_apply_lag_seconds, from each entry's append (its
#      id's time) to its commit in the state; p50/p99 from the buckets;
#   3. recommendations/s on replica 1 (wrk, random customers) with no
#      writes, then while it takes and applies --rate events/s.
# After each phase: the CPU seconds each process used in it (redis, every
# replica, the load generators), i.e. where the time went.
#
#   bench/event_log_bench.sh [--threads N] [--batch B] [--rate EV_PER_S]
#                            [--duration S] [--connections C] [--replicas N]
#                            [--perf DIR]
#
# --perf DIR: `perf record --call-graph dwarf` of replica 1 and redis during
# phase 2 (DIR/write.data) and phase 3's busy half (DIR/busy.data); then
# `perf report -i DIR/write.data`.
# SHOPKEEPER=PATH runs another build of the server (A/B runs).
# Reaches only 127.0.0.1. Everything it starts is stopped on exit; its work
# directory is removed unless KEEP_WORK=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${SHOPKEEPER:-$ROOT/bin/shopkeeper}"
PACER="$ROOT/bin/shopkeeper-event-pacer"
DATA="$ROOT/data/demo/online-retail-sample.csv"
COLUMNS="customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
THREADS=2
BATCH=100
RATE=20000
DURATION=10
CONNS=8
REPLICAS=1
PERF_DIR=""

while [ $# -gt 0 ]; do
	case "$1" in
	--threads) THREADS=$2; shift 2 ;;
	--batch) BATCH=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--replicas) REPLICAS=$2; shift 2 ;;
	--perf) PERF_DIR=$2; shift 2 ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	*) echo "event_log_bench: unknown option $1" >&2; exit 2 ;;
	esac
done
for t in redis-server wrk python3; do
	command -v $t >/dev/null || { echo "event_log_bench: $t is missing" >&2; exit 1; }
done
{ [ -x "$BIN" ] && [ -x "$PACER" ]; } || { echo "event_log_bench: build first (make)" >&2; exit 1; }

WORK=$(mktemp -d /var/tmp/sk-evlog-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync always \
	--dir "$WORK/redis" --logfile "$WORK/redis/log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

"$BIN" train --interactions "$DATA" --columns "$COLUMNS" --out "$WORK/model" --quiet 2>/dev/null
python3 - "$DATA" "$WORK" <<'EOF'
import csv, sys
cust, items = set(), set()
with open(sys.argv[1], newline="", encoding="utf-8", errors="replace") as f:
    for row in csv.DictReader(f):
        c, i = (row.get("CustomerID") or "").strip(), (row.get("StockCode") or "").strip()
        if c and i and '"' not in i and "\\" not in i:
            cust.add(c.split(".")[0]); items.add(i)
open(sys.argv[2] + "/customers.txt", "w").write("\n".join(sorted(cust)) + "\n")
open(sys.argv[2] + "/items.txt", "w").write("\n".join(sorted(items)) + "\n")
EOF

# Replica r (1..REPLICAS): its own state, the same model and log.
RPIDS=() RPORTS=()
for r in $(seq "$REPLICAS"); do
	"$BIN" serve --model "$WORK/model" --state "$WORK/state$r" --listen 127.0.0.1:0 \
		--threads "$THREADS" --event-log "redis://127.0.0.1:$RPORT" 2>"$WORK/serve$r.err" &
	PIDS+=($!)
	RPIDS+=($!)
done
for r in $(seq "$REPLICAS"); do
	P=""
	for _ in $(seq 400); do
		P=$(grep -o 'on port [0-9]*' "$WORK/serve$r.err" | awk '{print $3}' || true)
		[ -n "$P" ] && curl -sf "http://127.0.0.1:$P/readyz" >/dev/null && break
		sleep 0.05
	done
	RPORTS+=("$P")
done
PORT=${RPORTS[0]}
PID1=${RPIDS[0]}
URL="http://127.0.0.1:$PORT"
REDIS_PID=${PIDS[0]}

echo "== CPU"
lscpu | grep -E 'Model name|^CPU\(s\)' | sed 's/  */ /g'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared with whatever else runs)"
echo "replicas: $REPLICAS (ports ${RPORTS[*]}), $THREADS request threads each"

hist() { # replica $1's apply-lag histogram buckets: "le count" lines
	curl -s "http://127.0.0.1:$1/metrics" | grep '^shopkeeper_event_log_apply_lag_seconds_bucket' |
		sed -E 's/.*le="([^"]*)"} ([0-9]+)/\1 \2/'
}
hists() { # every replica's into $WORK/$1.r
	for r in $(seq "$REPLICAS"); do hist "${RPORTS[$((r - 1))]}" >"$WORK/$1.$r"; done
}
lags() { # per replica: p50/p99 of the entries applied between hists $1 and $2
	for r in $(seq "$REPLICAS"); do
		python3 - "$WORK/$1.$r" "$WORK/$2.$r" "$r" <<'EOF'
import sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
d = [(le, int(y) - int(x)) for (le, x), (_, y) in zip(a, b)]
total = d[-1][1] if d else 0
def q(p):
    for le, c in d:
        if c >= p * total:
            return le
print("replica %s: apply lag over %d entries: p50 <= %s s, p99 <= %s s (histogram bucket bounds)"
      % (sys.argv[3], total, q(0.5), q(0.99)))
EOF
	done
}
ticks() { # user+system clock ticks of each long-lived process, then of the
	# shell's finished children (wrk, the pacer, curl): one line
	local t=""
	for p in "$REDIS_PID" "${RPIDS[@]}"; do
		t="$t $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)"
	done
	echo "$t $(awk '{print $16 + $17}' /proc/$$/stat)"
}
applied() { # entries replica 1 applied so far
	curl -s "$URL/metrics" | awk '/^shopkeeper_event_log_applied_total / {print $2}'
}
cpu_since() { # CPU seconds each process used since `ticks` printed $1; with
	# $2 (entries applied before), also the CPU microseconds per entry
	python3 - "$1" "$(ticks)" "$(getconf CLK_TCK)" "$REPLICAS" "${2:-}" "$(applied)" <<'EOF'
import sys
a, b, hz, n = sys.argv[1].split(), sys.argv[2].split(), float(sys.argv[3]), int(sys.argv[4])
d = [(int(y) - int(x)) / hz for x, y in zip(a, b)]
names = ["redis"] + ["replica %d" % (i + 1) for i in range(n)] + ["load generators"]
print("CPU seconds in this phase: " + ", ".join("%s %.1f" % (k, v) for k, v in zip(names, d)))
if sys.argv[5]:
    e = float(sys.argv[6]) - float(sys.argv[5])
    if e > 0:
        print("CPU per entry applied (%d entries): " % e +
              ", ".join("%s %.1f us" % (k, v * 1e6 / e) for k, v in zip(names[:-1], d[:-1])))
EOF
}
PERF=""
perf_start() { # --perf: record replica 1 and redis for DURATION s into DIR/$1.data
	[ -n "$PERF_DIR" ] || return 0
	mkdir -p "$PERF_DIR"
	perf record --call-graph dwarf,16384 -F 499 -o "$PERF_DIR/$1.data" -p "$PID1,$REDIS_PID" \
		-- sleep "$DURATION" >/dev/null 2>&1 &
	PERF=$!
}
perf_stop() { [ -z "$PERF" ] || wait "$PERF" || true; PERF=""; }

echo "== 1. durable events/s through the log (batches of $BATCH, $CONNS connections, ${DURATION}s)"
hists h1a
T=$(ticks)
A=$(applied)
wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$ROOT/bench/wrk/events.lua" "$URL" -- \
	"$WORK/customers.txt" "$WORK/items.txt" "$BATCH" >"$WORK/wrk1.txt"
python3 - "$WORK/wrk1.txt" "$BATCH" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", t)
print("acknowledged events/s: %.0f (%.1f requests/s x %s), request latency avg %s max %s, non-2xx: %s"
      % (rps * int(sys.argv[2]), rps, sys.argv[2], lat.group(1), lat.group(3),
         non2xx.group(1) if non2xx else 0))
EOF
cpu_since "$T" "$A"
sleep 2 # the other replicas catch up
hists h1b
lags h1a h1b

# The paced writer (bench/event_pacer.c): RATE events/s in batches of BATCH,
# for DURATION seconds.
# 16 connections: at 20,000 events/s in batches of 100 each sends 12.5
# requests/s, so the rate offered holds while a write takes up to 80 ms
# (4 connections, as the Python writer had, fell behind once it took 20).
pace() { "$PACER" "$1" "$RATE" "$BATCH" "$DURATION" "$WORK/customers.txt" "$WORK/items.txt" 16; }

echo "== 2. applier lag at $RATE events/s (batches of $BATCH)"
hists h2a
T=$(ticks)
A=$(applied)
perf_start write
pace "$PORT"
cpu_since "$T" "$A"
perf_stop
sleep 1
hists h2b
lags h2a h2b

echo "== 3. recommendations/s, no writes vs while applying $RATE events/s"
recs() {
	wrk -t1 -c32 -d"${DURATION}s" -s "$ROOT/bench/wrk/random_customer.lua" "$URL" -- \
		"$WORK/customers.txt" | awk '/Requests\/sec/ {print $2}'
}
T=$(ticks)
IDLE=$(recs)
cpu_since "$T"
pace "$PORT" >"$WORK/pace3.txt" &
PACE=$!
perf_start busy
T=$(ticks)
BUSY=$(recs)
wait $PACE
cpu_since "$T"
perf_stop
cat "$WORK/pace3.txt"
# Again without writes: the customers' logs grew meanwhile, which slows
# their recommendations too; the ratio against this second figure is what
# the writes themselves cost.
IDLE2=$(recs)
python3 -c "import sys; i,b,j=map(float,sys.argv[1:]); print('recommendations/s: %.0f idle, %.0f while applying, %.0f idle again: %.0f%% of the first idle rate, %.0f%% of the second' % (i, b, j, 100*b/i, 100*b/j))" "$IDLE" "$BUSY" "$IDLE2"
echo "== redis INFO commandstats (the whole run)"
redis-cli -p "$RPORT" info commandstats | grep -E 'cmdstat_(eval|evalsha|xread|xadd|rpush|xrange|wait)[:]' | tr -d '\r'
