#!/usr/bin/env bash
# Soak: a long run at full load with model switches, watching memory and
# checking every answer.
#
#   bench/soak.sh [--data FILE] [--columns MAP] [--requests N] [--threads N]
#                 [--connections C] [--switch-every S]
#
# Trains two models of the same data (EASE and cosine: different answers
# for the same customer), serves the first, and then at once:
#   - wrk sends random per-customer requests until N (default 1,000,000)
#     have been answered, counting non-2xx answers and socket errors;
#   - every --switch-every seconds (default 5) the other model is renamed
#     into the model directory and the server gets SIGHUP;
#   - a checker (Python, one connection) asks for a fixed set of customers
#     over and over and requires every answer to be byte for byte the
#     answer precomputed from the model its "model" field names: an answer
#     mixing two models, or naming one and holding the other's items,
#     fails the run;
#   - the server's anonymous RSS (VmRSS minus the file-backed model pages:
#     RssAnon in /proc/PID/status) is sampled every second.
# Prints the request count, errors, switches, wrong answers, and the
# anonymous RSS at the start (after warm-up), its maximum and at the end.
# Exits 1 on any error or wrong answer.
#
# Reaches only 127.0.0.1. Every process it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin/shopkeeper"
DATA="$ROOT/data/demo/online-retail-sample.csv"
COLUMNS="customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
REQUESTS=1000000
THREADS=1
CONNS=32
SWITCH=5

while [ $# -gt 0 ]; do
	case "$1" in
	--data) DATA=$2; shift 2 ;;
	--columns) COLUMNS=$2; shift 2 ;;
	--requests) REQUESTS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--switch-every) SWITCH=$2; shift 2 ;;
	-h|--help) sed -n '2,26p' "$0"; exit 0 ;;
	*) echo "soak: unknown option $1" >&2; exit 2 ;;
	esac
done
command -v wrk >/dev/null || { echo "soak: wrk is missing (apt-get install wrk)" >&2; exit 1; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
make -C "$ROOT" -s all >/dev/null

WORK=$(mktemp -d /tmp/shopkeeper-soak.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== training two models on $DATA" >&2
for algo in ease cosine; do
	"$BIN" train --interactions "$DATA" --columns "$COLUMNS" --algo $algo --out "$WORK/$algo" --quiet
done
"$BIN" inspect "$WORK/ease" --list customers | grep -E '^[A-Za-z0-9._-]+$' >"$WORK/customers.txt"
mkdir -p "$WORK/live"
cp "$WORK/ease/model.mdb" "$WORK/ease/model.sum" "$WORK/live/"

taskset -c 0 "$BIN" serve --model "$WORK/live" --state "$WORK/state" --listen 127.0.0.1:0 \
	--threads "$THREADS" 2>"$WORK/serve.log" &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do
	PORT=$(grep -o 'on port [0-9]*' "$WORK/serve.log" | grep -o '[0-9]*$' || true)
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "${PORT:-}" ] || { cat "$WORK/serve.log" >&2; exit 1; }

# Expected answers: each model's answer for a fixed set of customers, asked
# from a second server on that model alone.
echo "== precomputing the checker's answers from both models" >&2
for algo in ease cosine; do
	"$BIN" serve --model "$WORK/$algo" --state "$WORK/state-$algo" --listen 127.0.0.1:0 \
		--threads 1 2>"$WORK/serve-$algo.log" &
	p=$!
	for _ in $(seq 100); do
		P2=$(grep -o 'on port [0-9]*' "$WORK/serve-$algo.log" | grep -o '[0-9]*$' || true)
		[ -n "$P2" ] && break
		sleep 0.1
	done
	"$PY" - "$P2" "$WORK" "$algo" <<'PY'
import http.client, json, sys
port, work, algo = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ids = open(work + "/customers.txt").read().split()[:200]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
out = {}
for cid in ids:
    conn.request("GET", "/v1/customers/%s/recommendations?n=10" % cid)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (cid, r.status)
    out[cid] = body.decode()
model = json.loads(next(iter(out.values())))["model"]
json.dump({"model": model, "answers": out}, open("%s/expected-%s.json" % (work, algo), "w"))
PY
	kill "$p"
	wait "$p" 2>/dev/null || true
done

rss_anon() { awk '/^RssAnon:/ {print $2}' "/proc/$SERVER/status"; }

# Warm-up, then the baseline RSS.
taskset -c 1 wrk -t1 -c"$CONNS" -d3s -s "$ROOT/bench/wrk/random_customer.lua" \
	"http://127.0.0.1:$PORT" -- "$WORK/customers.txt" >/dev/null
RSS0=$(rss_anon)

"$PY" - "$PORT" "$WORK" >"$WORK/checker.out" 2>&1 <<'PY' &
import http.client, json, os, sys, time
port, work = int(sys.argv[1]), sys.argv[2]
exp = {}
for algo in ("ease", "cosine"):
    e = json.load(open("%s/expected-%s.json" % (work, algo)))
    exp[e["model"]] = e["answers"]
ids = list(next(iter(exp.values())).keys())
checked = wrong = failed = 0
seen = set()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
deadline = time.time() + 3600  # bounded: the script stops it long before
while not os.path.exists(work + "/stop") and time.time() < deadline:
    for cid in ids:
        try:
            conn.request("GET", "/v1/customers/%s/recommendations?n=10" % cid)
            r = conn.getresponse()
            body = r.read().decode()
        except Exception as e:
            failed += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        checked += 1
        if r.status != 200:
            failed += 1
            continue
        model = json.loads(body)["model"]
        seen.add(model)
        if model not in exp or exp[model][cid] != body:
            wrong += 1
            if wrong <= 3:
                print("wrong answer for %s from model %s: %s" % (cid, model, body[:200]))
print("checker %d %d %d %d" % (checked, wrong, failed, len(seen)))
PY
CHECKER=$!
PIDS+=("$CHECKER")

"$PY" - "$SERVER" "$WORK" <<'PY' >"$WORK/rss.txt" &
import os, sys, time
pid, work = sys.argv[1], sys.argv[2]
while not os.path.exists(work + "/stop"):
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("RssAnon:"):
                print(line.split()[1], flush=True)
    except OSError:
        break
    time.sleep(1)
PY
PIDS+=("$!")

# Switches: the other model renamed into place (as train does), then SIGHUP.
(
	n=0
	while [ ! -e "$WORK/stop" ]; do
		sleep "$SWITCH"
		[ -e "$WORK/stop" ] && break
		if [ $((n % 2)) = 0 ]; then src=cosine; else src=ease; fi
		cp "$WORK/$src/model.mdb" "$WORK/live/model.mdb.next"
		cp "$WORK/$src/model.sum" "$WORK/live/model.sum.next"
		mv "$WORK/live/model.mdb.next" "$WORK/live/model.mdb"
		mv "$WORK/live/model.sum.next" "$WORK/live/model.sum" # with its checksum
		kill -HUP "$SERVER"
		n=$((n + 1))
		echo $n >"$WORK/switches"
	done
) &
PIDS+=("$!")

# wrk runs of 10 s each until N requests are done (bounded: at most 1,000
# runs).
done_total=0
runs=0
while [ "$done_total" -lt "$REQUESTS" ] && [ "$runs" -lt 1000 ]; do
	taskset -c 1 wrk -t1 -c"$CONNS" -d10s -s "$ROOT/bench/wrk/random_customer.lua" \
		"http://127.0.0.1:$PORT" -- "$WORK/customers.txt" >"$WORK/wrk-$runs.out" 2>&1
	done_total=$((done_total + $(awk '/requests in/ {print $1}' "$WORK/wrk-$runs.out")))
	runs=$((runs + 1))
	echo "== $done_total requests" >&2
done
touch "$WORK/stop"
wait "$CHECKER" || true
RSS1=$(rss_anon)

"$PY" - "$WORK" "$RSS0" "$RSS1" <<'PY'
import re, sys
work, rss0, rss1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = errors = 0
import glob
for f in sorted(glob.glob(work + "/wrk-*.out")):
    t = open(f).read()
    total += int(re.search(r"(\d+) requests in", t).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    errors += (int(m.group(1)) if m else 0) + (sum(map(int, s.groups())) if s else 0)
try:
    switches = int(open(work + "/switches").read())
except OSError:
    switches = 0
ck = open(work + "/checker.out").read()
checked, wrong, failed, models = map(int, re.search(r"checker (\d+) (\d+) (\d+) (\d+)", ck).group(1, 2, 3, 4))
samples = [int(x) for x in open(work + "/rss.txt").read().split()]
peak = max(samples) if samples else rss1
print(ck.strip())
print("requests %d, errors %d, model switches %d" % (total, errors, switches))
print("checker: %d answers checked against both models, %d wrong, %d failed, %d models seen"
      % (checked, wrong, failed, models))
print("anonymous RSS: %.1f MiB after warm-up, %.1f MiB peak, %.1f MiB at the end (%+.1f MiB)"
      % (rss0 / 1024, peak / 1024, rss1 / 1024, (rss1 - rss0) / 1024))
sys.exit(1 if errors or wrong or failed or checked == 0 else 0)
PY
