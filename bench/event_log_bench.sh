#!/usr/bin/env bash
# Event log benchmark (issue 13): one `shopkeeper serve --event-log` replica
# on a redis-server of its own (appendonly yes, appendfsync always, files
# under /var/tmp, on disk), measuring
#   1. durable events/s acknowledged through the log: wrk posting batches of
#      --batch events; every 200 means appended, fsynced by Redis and applied
#      to this replica's state (read your writes);
#   2. applier lag at --rate events/s (paced, in batches): the histogram
#      shopkeeper_event_log_apply_lag_seconds, from each entry's append (its
#      id's time) to its commit in the state; p50/p99 from the buckets;
#   3. recommendations/s (wrk, random customers) with no writes, then while
#      the replica applies --rate events/s.
#
#   bench/event_log_bench.sh [--threads N] [--batch B] [--rate EV_PER_S]
#                            [--duration S] [--connections C]
#
# Reaches only 127.0.0.1. Everything it starts is stopped on exit; its work
# directory is removed unless KEEP_WORK=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin/shopkeeper"
DATA="$ROOT/data/demo/online-retail-sample.csv"
COLUMNS="customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
THREADS=2
BATCH=100
RATE=20000
DURATION=10
CONNS=8

while [ $# -gt 0 ]; do
	case "$1" in
	--threads) THREADS=$2; shift 2 ;;
	--batch) BATCH=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "event_log_bench: unknown option $1" >&2; exit 2 ;;
	esac
done
for t in redis-server wrk python3; do
	command -v $t >/dev/null || { echo "event_log_bench: $t is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "event_log_bench: build first (make)" >&2; exit 1; }

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

"$BIN" serve --model "$WORK/model" --state "$WORK/state" --listen 127.0.0.1:0 \
	--threads "$THREADS" --event-log "redis://127.0.0.1:$RPORT" 2>"$WORK/serve.err" &
PIDS+=($!)
PORT=""
for _ in $(seq 200); do
	PORT=$(grep -o 'on port [0-9]*' "$WORK/serve.err" | awk '{print $3}' || true)
	[ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
	sleep 0.05
done
URL="http://127.0.0.1:$PORT"

echo "== CPU"
lscpu | grep -E 'Model name|^CPU\(s\)' | sed 's/  */ /g'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared with whatever else runs)"

hist() { # the apply-lag histogram's buckets: "le count" lines
	curl -s "$URL/metrics" | grep '^shopkeeper_event_log_apply_lag_seconds_bucket' |
		sed -E 's/.*le="([^"]*)"} ([0-9]+)/\1 \2/'
}

echo "== 1. durable events/s through the log (batches of $BATCH, $CONNS connections, ${DURATION}s)"
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

# The paced writer: RATE events/s in batches of BATCH, over 4 connections.
cat >"$WORK/pace.py" <<'EOF'
import http.client, json, random, sys, threading, time
port, rate, batch, secs, work = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
cust = open(work + "/customers.txt").read().split()
items = open(work + "/items.txt").read().split()
kinds = ["view", "view", "view", "cart", "purchase"]
n_conn = 4
per = rate / batch / n_conn  # requests/s per connection
sent, bad = [0], [0]
lock = threading.Lock()
def worker(seed):
    rnd = random.Random(seed)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < secs:
        due = t0 + k / per
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        body = json.dumps([{"customer_id": rnd.choice(cust), "item_id": rnd.choice(items),
                            "event": rnd.choice(kinds)} for _ in range(batch)])
        c.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        with lock:
            if r.status == 200: sent[0] += batch
            else: bad[0] += 1
        k += 1
ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_conn)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
el = time.monotonic() - t0
print("paced writer: %.0f events/s acknowledged over %.1fs (%d non-200)" % (sent[0] / el, el, bad[0]))
EOF

echo "== 2. applier lag at $RATE events/s (batches of $BATCH)"
hist >"$WORK/h0"
python3 "$WORK/pace.py" "$PORT" "$RATE" "$BATCH" "$DURATION" "$WORK"
hist >"$WORK/h1"
python3 - "$WORK/h0" "$WORK/h1" <<'EOF'
import sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
d = [(le, int(y) - int(x)) for (le, x), (_, y) in zip(a, b)]
total = d[-1][1]
def q(p):
    for le, c in d:
        if c >= p * total:
            return le
print("apply lag over %d entries: p50 <= %s s, p99 <= %s s (histogram bucket bounds)"
      % (total, q(0.5), q(0.99)))
EOF

echo "== 3. recommendations/s, no writes vs while applying $RATE events/s"
recs() {
	wrk -t1 -c32 -d"${DURATION}s" -s "$ROOT/bench/wrk/random_customer.lua" "$URL" -- \
		"$WORK/customers.txt" | awk '/Requests\/sec/ {print $2}'
}
IDLE=$(recs)
python3 "$WORK/pace.py" "$PORT" "$RATE" "$BATCH" "$DURATION" "$WORK" >"$WORK/pace3.txt" &
PACE=$!
BUSY=$(recs)
wait $PACE
cat "$WORK/pace3.txt"
python3 -c "import sys; i,b=float(sys.argv[1]),float(sys.argv[2]); print('recommendations/s: %.0f idle, %.0f while applying (%.0f%%)' % (i, b, 100*b/i))" "$IDLE" "$BUSY"
