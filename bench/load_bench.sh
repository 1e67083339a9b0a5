#!/usr/bin/env bash
# Load benchmark: shopkeeper against nginx serving the same answers
# precomputed as static JSON files, in the same run, same thread count,
# keep-alive on both, wrk on its own core.
#
#   bench/load_bench.sh [--data FILE] [--columns MAP] [--model DIR]
#                       [--threads N] [--connections C] [--duration S] [--runs R]
#                       [--sample N] [--recs-only]
#                       [--event-rate EV_PER_S [--event-batch B[,B...]]
#                        [--events-for sample|all]] [--state-in DIR]
#
# --data     interactions CSV (default: the bundled demo slice); e.g.
#            ../shared/data/online-retail.csv.gz with the default --columns
# --model    use an already trained model directory instead of training
# --threads  server threads = nginx workers (default 1: on this 2-core
#            machine the server gets core 0, wrk core 1)
# --runs     wrk runs per route and server (default 3; medians are reported)
# --sample   at most N customers (and N items), a fixed random sample, are
#            precomputed for nginx and asked by wrk (default 9000: nginx's
#            open_file_cache needs a descriptor per file, and the open-files
#            limit is often 20000)
# --recs-only  only the recommendation routes (the hot path: customer
#            recs with and without the precomputed lists, item similar,
#            20% live customers, then customer recs from shopkeeper and
#            nginx at one fixed rate: the open-loop p99 at equal load),
#            not baskets and events
# --event-rate  instead of the routes: per-customer recommendations alone
#            and while bench/event_pacer.c posts EV_PER_S events/s (paced,
#            not saturating) in batches of B (default 100; a list such as
#            100,10 measures each), RUNS times alternating "alone, under
#            load, alone again"; prints the medians, the ratios, wrk's p99
#            and the events/s the pacer got acknowledged (200); then, at
#            half the rate wrk reached alone again (at most 10,000/s: the
#            probe shares wrk's core), open-loop latency (the pacer's probe
#            mode) alone and under the events
# --events-for  whose events: `sample` (default) the customers wrk asks,
#            so each gets EV_PER_S / sample events a second and their logs
#            grow through the run (4.5 a second each on Online Retail: the
#            hard case); `all` every customer of the model (on a shop of a
#            million, one event each every 50 s at 20,000/s)
# --state-in  keep the measured server's state in a new directory under DIR
#            (default: the work directory under /tmp). With a tmpfs such as
#            /dev/shm, a commit's fdatasync returns at once and its writes are
#            memory copies: the event writer's cost without the disk, a bound
#            for what a cheaper state layout could give (not a way to run)
#
# The customer route is measured on three servers in turn: nginx, the
# server as deployed (answers for customers without live events come from
# the model's precomputed lists, train --precompute) and the same server
# with --no-precomputed (every request scored: "before"). Then 20% of the
# sampled customers get live events (a view and a cart each, on the
# fast server only) and a fourth route asks all of them: 1 request in 5
# must score.
#
# Every row also gives cpu_us: the server's CPU time (all its threads, or
# nginx's master and workers) per request answered, from /proc/PID/stat
# around each wrk run. On a shared machine it moves far less than req/s,
# so the ratios line gives "requests per CPU second" beside throughput.
#
# Reaches only 127.0.0.1. Every process it starts is stopped on exit; its
# work directory (models, nginx's files, wrk's output) is removed unless
# KEEP_WORK=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# SHOPKEEPER_BIN: another build to measure (e.g. main's, for a before/after).
BIN="${SHOPKEEPER_BIN:-$ROOT/bin/shopkeeper}"
DATA="$ROOT/data/demo/online-retail-sample.csv"
COLUMNS="customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice"
MODEL=""
THREADS=1
CONNS=32
DURATION=10
RUNS=3
SAMPLE=9000
RECS_ONLY=""
EVENT_RATE=""
EVENT_BATCH=100
EVENTS_FOR=sample
STATE_IN=""
PROBE_MAX=10000 # requests/s the open-loop probe asks at most (see below)

while [ $# -gt 0 ]; do
	case "$1" in
	--data) DATA=$2; shift 2 ;;
	--columns) COLUMNS=$2; shift 2 ;;
	--model) MODEL=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--connections) CONNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--sample) SAMPLE=$2; shift 2 ;;
	--recs-only) RECS_ONLY=1; shift ;;
	--event-rate) EVENT_RATE=$2; shift 2 ;;
	--event-batch) EVENT_BATCH=$2; shift 2 ;;
	--events-for) EVENTS_FOR=$2; shift 2 ;;
	--state-in) STATE_IN=$2; shift 2 ;;
	-h|--help) sed -n '2,62p' "$0"; exit 0 ;;
	*) echo "load_bench: unknown option $1" >&2; exit 2 ;;
	esac
done

# Numbers checked before anything starts: a bad one would otherwise stop
# the run minutes in, in shell arithmetic.
posint() { case "$1" in "" | 0* | *[!0-9]*) return 1 ;; esac; }
[ -z "$EVENT_RATE" ] || posint "$EVENT_RATE" ||
	{ echo "load_bench: --event-rate: expected events a second (a positive integer), got '$EVENT_RATE'" >&2; exit 2; }
case "$EVENTS_FOR" in sample | all) ;; *)
	echo "load_bench: --events-for: expected sample or all, got '$EVENTS_FOR'" >&2; exit 2 ;;
esac
if [ -n "$STATE_IN" ] && ! { [ -d "$STATE_IN" ] && [ -w "$STATE_IN" ]; }; then
	echo "load_bench: --state-in: '$STATE_IN' is not a writable directory" >&2
	exit 2
fi
for b in ${EVENT_BATCH//,/ }; do
	posint "$b" ||
		{ echo "load_bench: --event-batch: expected positive integers separated by commas, got '$EVENT_BATCH'" >&2; exit 2; }
done

need() {
	command -v "$1" >/dev/null && return 0
	if [ "$(id -u)" = 0 ]; then
		echo "load_bench: installing $2" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	else
		echo "load_bench: $1 is missing (apt-get install $2)" >&2
		exit 1
	fi
}
need wrk wrk
need nginx nginx
need curl curl
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

make -C "$ROOT" -s all >/dev/null

WORK=$(mktemp -d /tmp/shopkeeper-load.XXXXXX)
SERVER_PID=""
COLD_PID=""
NGINX_PID=""
STATE_DIR="$WORK/state"
[ -z "$STATE_IN" ] || STATE_DIR=$(mktemp -d "$STATE_IN/shopkeeper-load-state.XXXXXX")
cleanup() {
	[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	[ -n "$COLD_PID" ] && kill "$COLD_PID" 2>/dev/null && wait "$COLD_PID" 2>/dev/null
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
	[ -z "$STATE_IN" ] || [ -n "${KEEP_WORK:-}" ] || rm -rf "$STATE_DIR"
}
trap cleanup EXIT

if [ -z "$MODEL" ]; then
	MODEL="$WORK/model"
	echo "== training on $DATA" >&2
	"$BIN" train --interactions "$DATA" --columns "$COLUMNS" --out "$MODEL" --quiet
fi
# A fixed sample: the same ids for both servers, the same in every run.
sample() { shuf -n "$SAMPLE" --random-source=<(yes 2>/dev/null) ; }
"$BIN" inspect "$MODEL" --list customers | grep -E '^[A-Za-z0-9._-]+$' | sample >"$WORK/customers.txt"
"$BIN" inspect "$MODEL" --list items | grep -E '^[A-Za-z0-9._-]+$' | sample >"$WORK/items.txt"
echo "== $(wc -l <"$WORK/customers.txt") customers, $(wc -l <"$WORK/items.txt") items" >&2
# Whose events the paced writer posts (--events-for).
if [ "$EVENTS_FOR" = all ]; then
	"$BIN" inspect "$MODEL" --list customers | grep -E '^[A-Za-z0-9._-]+$' >"$WORK/event_customers.txt"
else
	cp "$WORK/customers.txt" "$WORK/event_customers.txt"
fi

# The port a server started with --listen 127.0.0.1:0 says it took, from
# its log (waits up to 10 s; the log is shown and the script stops if none).
port_of() { # serve.log
	local p="" i
	for i in $(seq 100); do
		p=$(grep -o 'on port [0-9]*' "$1" | grep -o '[0-9]*$' || true)
		[ -n "$p" ] && break
		sleep 0.1
	done
	[ -n "$p" ] || { cat "$1" >&2; exit 1; }
	echo "$p"
}

# ---- shopkeeper on core 0 ----------------------------------------------------
taskset -c 0 "$BIN" serve --model "$MODEL" --state "$STATE_DIR" --listen 127.0.0.1:0 \
	--threads "$THREADS" 2>"$WORK/serve.log" &
SERVER_PID=$!
PORT=$(port_of "$WORK/serve.log")
SK="http://127.0.0.1:$PORT"
# The same model scored on every request: the "before" of the lists.
taskset -c 0 "$BIN" serve --model "$MODEL" --state "$WORK/state-cold" --listen 127.0.0.1:0 \
	--threads "$THREADS" --no-precomputed 2>"$WORK/serve-cold.log" &
COLD_PID=$!
CPORT=$(port_of "$WORK/serve-cold.log")
SKC="http://127.0.0.1:$CPORT"

# ---- the same answers as files, for nginx ----------------------------------
echo "== precomputing every customer's and item's answer" >&2
"$PY" - "$PORT" "$WORK" <<'PY'
import http.client, os, sys
port, work = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
def save(path, url):
    conn.request("GET", url)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (url, r.status, body)
    full = os.path.join(work, "www", path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(body)
for cid in open(os.path.join(work, "customers.txt")).read().split():
    p = "/v1/customers/%s/recommendations" % cid
    save(p, p + "?n=10")
for iid in open(os.path.join(work, "items.txt")).read().split():
    p = "/v1/items/%s/similar" % iid
    save(p, p + "?n=10")
PY

# nginx cannot listen on port 0: take a port below the ephemeral range
# (where client connections never hold one) that no socket uses.
NPORT=$((20000 + $$ % 10000))
while [ -n "$(ss -tanH "( sport = :$NPORT )")" ]; do NPORT=$((NPORT + 1)); done
# open_file_cache keeps a descriptor per cached file: room for every
# answer when the open-files limit allows (else a smaller --sample).
FILES=$(($(wc -l <"$WORK/customers.txt") + $(wc -l <"$WORK/items.txt")))
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
CACHE_MAX=$((FILES < NOFILE - 1024 ? FILES : NOFILE - 1024))
[ "$CACHE_MAX" -lt "$FILES" ] && echo "load_bench: nginx may cache $CACHE_MAX of $FILES files" \
	"(open files limit $NOFILE): use --sample $(((NOFILE - 1024) / 2)) for all" >&2
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $THREADS;
worker_cpu_affinity auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	default_type application/json;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 65;
	keepalive_requests 100000000;
	open_file_cache max=$CACHE_MAX inactive=300s;
	open_file_cache_valid 300s;
	client_body_temp_path $WORK/nginx/tmp;
	proxy_temp_path $WORK/nginx/tmp;
	fastcgi_temp_path $WORK/nginx/tmp;
	uwsgi_temp_path $WORK/nginx/tmp;
	scgi_temp_path $WORK/nginx/tmp;
	server {
		listen 127.0.0.1:$NPORT;
		root $WORK/www;
		location / { try_files \$uri =404; }
	}
}
EOF
# nginx's workers run as www-data: let them read the files.
chmod 755 "$WORK"
chmod -R a+rX "$WORK/www"
(ulimit -Sn "$NOFILE" && exec taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx") &
NGINX_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$NPORT/" && break; sleep 0.1; done
NG="http://127.0.0.1:$NPORT"
# Both must give the same bytes, or the comparison means nothing; apart
# from the rec_id, which is new in every answer (issue 15): nginx serves the
# one the answer had when it was precomputed, the same length.
mask_rec_id() { sed -E 's/"rec_id":"[A-Za-z0-9_-]{28}"/"rec_id":"REC_ID"/g'; }
first=$(head -n 1 "$WORK/customers.txt")
if ! cmp -s <(curl -s "$SK/v1/customers/$first/recommendations?n=10" | mask_rec_id) \
	<(curl -s "$NG/v1/customers/$first/recommendations?n=10" | mask_rec_id); then
	echo "load_bench: nginx and shopkeeper answers differ for customer $first:" >&2
	curl -s "$NG/v1/customers/$first/recommendations?n=10" | head -c 300 >&2
	exit 1
fi

# Both shopkeepers must give the same bytes too.
for cid in $(head -n 20 "$WORK/customers.txt"); do
	cmp -s <(curl -s "$SK/v1/customers/$cid/recommendations?n=10" | mask_rec_id) \
		<(curl -s "$SKC/v1/customers/$cid/recommendations?n=10" | mask_rec_id) || {
		echo "load_bench: the precomputed answer of $cid differs from scoring" >&2
		exit 1
	}
done

# ---- live customers: every 5th of the sample gets events (fast server) ------
awk 'NR % 5 == 0' "$WORK/customers.txt" >"$WORK/live.txt"
awk 'NR % 5 != 0' "$WORK/customers.txt" >"$WORK/quiet.txt"
"$PY" - "$PORT" "$WORK" <<'PY'
import http.client, json, os, sys
port, work = int(sys.argv[1]), sys.argv[2]
items = open(os.path.join(work, "items.txt")).read().split()
live = open(os.path.join(work, "live.txt")).read().split()
conn = http.client.HTTPConnection("127.0.0.1", port)
for k in range(0, len(live), 200):
    evs = []
    for i, cid in enumerate(live[k:k + 200]):
        for e, t in (("view", i), ("cart", i + 7)):
            evs.append({"customer_id": cid, "item_id": items[(k + t) % len(items)], "event": e})
    conn.request("POST", "/v1/events", json.dumps(evs), {"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status < 300, (r.status, r.read())
    r.read()
PY
echo "== $(wc -l <"$WORK/live.txt") customers with live events (1 in 5)" >&2

# ---- wrk -------------------------------------------------------------------
# CPU clock ticks (user + system, all threads) used so far by the server
# behind URL: shopkeeper's process, or nginx's master and workers.
server_ticks() { # url
	local pids p n=0
	case $1 in
	"$SK") pids=$SERVER_PID ;;
	"$SKC") pids=$COLD_PID ;;
	"$NG") pids="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
	*) echo 0; return ;;
	esac
	for p in $pids; do
		n=$((n + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$n"
}

# One run: prints "rps p50 p90 p99 max errors cpu_us" (latencies in ms;
# cpu_us: the server's CPU time per request answered, which depends far
# less on what else the machine runs than its rate does).
run_wrk() { # url script args...
	local url=$1 script=$2 t0 t1
	shift 2
	t0=$(server_ticks "$url")
	taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/wrk/$script" \
		"$url" -- "$@" >"$WORK/wrk.out" 2>&1 || true
	t1=$(server_ticks "$url")
	parse_wrk "$WORK/wrk.out" $((t1 - t0))
}

parse_wrk() { # wrk output file [server CPU ticks during the run]
	"$PY" - "$1" "${2:-0}" "$(getconf CLK_TCK)" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
pct = {p: ms(v, u) for p, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M)}
mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", t)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
done = re.search(r"(\d+) requests in", t)
ticks, hz = int(sys.argv[2]), float(sys.argv[3])
cpu_us = ticks / hz / int(done.group(1)) * 1e6 if ticks and done and int(done.group(1)) else 0
print(rps, pct["50"], pct["90"], pct["99"], ms(*mx.groups()), errors, round(cpu_us, 2))
PY
}

# Events in batches of 100 and per-customer recommendations at the same
# time, half the connections each: prints the two figure lines (events
# first, its rate in requests of 100 events).
mixed_run() {
	local half=$(((CONNS + 1) / 2))
	taskset -c 1 wrk -t1 -c"$half" -d"${DURATION}s" --latency -s "$ROOT/bench/wrk/events.lua" \
		"$SK" -- "$WORK/customers.txt" "$WORK/items.txt" 100 >"$WORK/mixed-ev.out" 2>&1 &
	local ev=$!
	taskset -c 1 wrk -t1 -c"$half" -d"${DURATION}s" --latency -s "$ROOT/bench/wrk/random_customer.lua" \
		"$SK" -- "$WORK/customers.txt" >"$WORK/mixed-rec.out" 2>&1 || true
	wait "$ev" || true
	parse_wrk "$WORK/mixed-ev.out"
	parse_wrk "$WORK/mixed-rec.out"
}

# Median of R runs: prints the median run's figures by throughput.
median_runs() {
	local i
	for i in $(seq "$RUNS"); do run_wrk "$@"; done | sort -n -k1 | sed -n "$(((RUNS + 1) / 2))p"
}

# R runs against each of two servers, alternating (A B A B ...), so that a
# noisy neighbour on a shared machine weighs on both alike; prints the two
# medians on two lines (A first).
paired_runs() { # url_a url_b script args...
	local a=$1 b=$2 i
	shift 2
	: >"$WORK/pa.txt"
	: >"$WORK/pb.txt"
	for i in $(seq "$RUNS"); do
		run_wrk "$a" "$@" >>"$WORK/pa.txt"
		run_wrk "$b" "$@" >>"$WORK/pb.txt"
	done
	sort -n -k1 "$WORK/pa.txt" | sed -n "$(((RUNS + 1) / 2))p"
	sort -n -k1 "$WORK/pb.txt" | sed -n "$(((RUNS + 1) / 2))p"
}

printf '\n%-28s %-10s %10s %8s %8s %8s %8s %7s %8s\n' route server req/s p50_ms p90_ms p99_ms max_ms errors cpu_us
report() { # label server figures... (cpu_us 0: not measured)
	printf '%-28s %-10s %10.0f %8.3f %8.3f %8.3f %8.2f %7d %8.2f\n' "$1" "$2" $3 $4 $5 $6 $7 $8 "${9:-0}"
}

ratio() { # label sk-figures ng-figures
	"$PY" -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); \
cpu=(', requests per CPU second %.2fx' % (float(b[6])/float(a[6])) if len(a) > 6 and len(b) > 6 and float(a[6]) and float(b[6]) else ''); \
print('%-28s shopkeeper/nginx: throughput %.2fx, p99 %.2fx%s%s' % (sys.argv[3], float(a[0])/float(b[0]), float(a[3])/float(b[3]), cpu, \
'  (ERRORS in a run: not comparable)' if int(a[5]) or int(b[5]) else ''))" \
		"$2" "$3" "$1"
}

declare -a RATIOS

# ---- under event load (--event-rate) ----------------------------------------
# Per-customer recommendations alone, then while the paced writer (on wrk's
# core) posts EVENT_RATE events/s, then alone again: the pacer writes to the
# same sampled customers, so their logs grow as it runs and "alone again"
# is the same state without the writes (the ratio against it is what the
# writing itself costs; against the first, also what the grown logs cost).
PACER="$ROOT/bin/shopkeeper-event-pacer"
metric() { curl -s "$SK/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
# CPU clock ticks (user + system) so far of the server's event writer (the
# thread named sk-events) and of its other threads: "writer others".
thread_ticks() {
	local t w=0 o=0 n
	for t in /proc/"$SERVER_PID"/task/*; do
		n=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
		if [ "$(cat "$t/comm" 2>/dev/null)" = sk-events ]; then w=$((w + n)); else o=$((o + n)); fi
	done
	echo "$w $o"
}
# Appends "writer_ticks other_ticks" used since `thread_ticks` printed $1 to $2.
ticks_since() { echo "$1 $(thread_ticks)" | awk '{print $3 - $1, $4 - $2}' >>"$2"; }
if [ -n "$EVENT_RATE" ]; then
	[ -x "$PACER" ] || { echo "load_bench: $PACER is missing (make)" >&2; exit 1; }
	for batch in ${EVENT_BATCH//,/ }; do
		# Each connection waits for its acknowledgement, which takes a
		# group commit's fsync (10 to 40 ms here): at most 25 requests/s
		# a connection keeps the rate on time (16 connections for
		# 20,000 events/s in batches of 100; with 16 for batches of 10
		# the pacer reached only 2,851/s). At most 64 (event_pacer.c).
		pconns=$((EVENT_RATE / batch / 25))
		pconns=$((pconns < 16 ? 16 : pconns > 64 ? 64 : pconns))
		: >"$WORK/pa.txt"
		: >"$WORK/pb.txt"
		: >"$WORK/pc.txt"
		: >"$WORK/pacer.txt"
		: >"$WORK/oa.txt"
		: >"$WORK/ob.txt"
		: >"$WORK/ta.txt"
		: >"$WORK/tb.txt"
		c0=$(metric shopkeeper_event_commits_total)
		e0=$(metric shopkeeper_events_accepted_total)
		for i in $(seq "$RUNS"); do
			t=$(thread_ticks)
			run_wrk "$SK" random_customer.lua "$WORK/customers.txt" >>"$WORK/pa.txt"
			ticks_since "$t" "$WORK/ta.txt"
			taskset -c 1 "$PACER" "$PORT" "$EVENT_RATE" "$batch" $((DURATION + 2)) \
				"$WORK/event_customers.txt" "$WORK/items.txt" "$pconns" >>"$WORK/pacer.txt" &
			pacer=$!
			t=$(thread_ticks)
			sleep 1
			run_wrk "$SK" random_customer.lua "$WORK/customers.txt" >>"$WORK/pb.txt"
			wait "$pacer"
			ticks_since "$t" "$WORK/tb.txt"
			run_wrk "$SK" random_customer.lua "$WORK/customers.txt" >>"$WORK/pc.txt"
			# Open loop at half the rate just reached alone again (the
			# same state, the logs grown by this round's events): the
			# latency of the rate the target keeps, without wrk's queue
			# (32 requests in flight on one thread). At most PROBE_MAX a
			# second: the probe (one thread, 16 connections) shares wrk's
			# core with the pacer and took half of it at 10,000/s (AMD
			# EPYC, 2026-12-03); at 20,000/s it sent 1% of its requests
			# 4.5 ms late or more and timed its own lateness. It prints
			# that lateness ("sent late p99"): what of the tail is the
			# client's.
			half=$(tail -n 1 "$WORK/pc.txt" | awk -v max="$PROBE_MAX" \
				'{v = $1 / 2; printf "%d", v < max ? v : max}')
			taskset -c 1 "$PACER" probe "$PORT" "$half" "$DURATION" "$WORK/customers.txt" \
				>>"$WORK/oa.txt"
			taskset -c 1 "$PACER" "$PORT" "$EVENT_RATE" "$batch" $((DURATION + 2)) \
				"$WORK/event_customers.txt" "$WORK/items.txt" "$pconns" >>"$WORK/pacer.txt" &
			pacer=$!
			sleep 1
			taskset -c 1 "$PACER" probe "$PORT" "$half" "$DURATION" "$WORK/customers.txt" \
				>>"$WORK/ob.txt"
			wait "$pacer"
		done
		c1=$(metric shopkeeper_event_commits_total)
		e1=$(metric shopkeeper_events_accepted_total)
		med() { sort -n -k1 "$WORK/$1.txt" | sed -n "$(((RUNS + 1) / 2))p"; }
		alone=$(med pa)
		busy=$(med pb)
		again=$(med pc)
		report "GET customer recs, alone" shopkeeper $alone
		report "  while $EVENT_RATE ev/s x$batch" shopkeeper $busy
		report "  alone again" shopkeeper $again
		RATIOS+=("$("$PY" - "$alone" "$busy" "$again" "$WORK/pacer.txt" "$batch" "$EVENT_RATE" \
			"$((e1 - e0))" "$((c1 - c0))" "$WORK/pa.txt" "$WORK/ta.txt" "$WORK/tb.txt" \
			"$(getconf CLK_TCK)" "$DURATION" "$WORK/oa.txt" "$WORK/ob.txt" "$PROBE_MAX" <<'PY'
import re, statistics, sys
a, b, c = (list(map(float, x.split())) for x in sys.argv[1:4])
acked = [float(x) for x in re.findall(r"([\d.]+) events/s acknowledged", open(sys.argv[4]).read())]
bad = sum(int(x) for x in re.findall(r"\((\d+) non-200\)", open(sys.argv[4]).read()))
events, commits = int(sys.argv[7]), int(sys.argv[8])
print("under %s events/s in batches of %s: recommendations %.0f%% of alone, %.0f%% of alone "
      "again; p99 %.2f ms (alone %.2f, again %.2f); events/s acknowledged %.0f (median of %d "
      "pacer runs, %d non-200); %.0f events per group commit"
      % (sys.argv[6], sys.argv[5], 100 * b[0] / a[0], 100 * b[0] / c[0], b[3], a[3], c[3],
         statistics.median(acked) if acked else 0, len(acked), bad,
         events / commits if commits else 0))
# CPU per unit of work, which depends far less on what else the machine
# runs than rates do: the writer's per event acknowledged under load, the
# request threads' per recommendation alone (the first runs of each round).
hz, dur = float(sys.argv[12]), float(sys.argv[13])
ta = [list(map(int, l.split())) for l in open(sys.argv[10])]
tb = [list(map(int, l.split())) for l in open(sys.argv[11])]
ra = [float(l.split()[0]) for l in open(sys.argv[9])]
if ta and tb and acked:
    w_us = statistics.median(t[0] / hz / (acked[i] * (dur + 2)) * 1e6 for i, t in enumerate(tb))
    alone_us = statistics.median(t[1] / hz / (ra[i] * dur) * 1e6 for i, t in enumerate(ta))
    print("  CPU: event writer %.1f us per event (%.0f%% of a core at %s events/s); request "
          "threads %.1f us per recommendation alone (medians)"
          % (w_us, w_us * float(sys.argv[6]) / 1e4, sys.argv[6], alone_us))
def probes(path):
    return [tuple(map(float, m)) for m in re.findall(
        r"at (\d+)/s: p50 ([\d.]+) p90 [\d.]+ p99 ([\d.]+) p99\.9 ([\d.]+) max [\d.]+ ms \((\d+) non-200\); "
        r"sent late p99 ([\d.]+) max [\d.]+ ms; from sent p99 ([\d.]+)", open(path).read())]
oa, ob = probes(sys.argv[14]), probes(sys.argv[15])
if oa and ob:
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    print("  open loop at half the rate alone again, at most %d/s (%.0f req/s answered, medians of %d): p99 %.2f ms alone, "
          "%.2f ms under %s events/s (p50 %.2f / %.2f, p99.9 %.2f / %.2f; %d non-200); the probe's own "
          "lateness p99 %.2f / %.2f ms; from sent, p99 %.2f / %.2f ms"
          % (int(sys.argv[16]), med(ob, 0), len(ob), med(oa, 2), med(ob, 2), sys.argv[6], med(oa, 1), med(ob, 1),
             med(oa, 3), med(ob, 3), sum(r[4] for r in oa + ob), med(oa, 5), med(ob, 5), med(oa, 6),
             med(ob, 6)))
PY
)")
	done
	echo
	printf '%s\n' "${RATIOS[@]}"
	echo
	echo "threads=$THREADS connections=$CONNS duration=${DURATION}s runs=$RUNS (medians); events for the $EVENTS_FOR customers; server on core 0, wrk and the pacer on core 1; load: $(uptime | sed 's/.*load average: //')"
	exit 0
fi
# R runs against each of three servers, in turn, as paired_runs.
triple_runs() { # url_a url_b url_c script args...
	local a=$1 b=$2 c=$3 i
	shift 3
	: >"$WORK/pa.txt"
	: >"$WORK/pb.txt"
	: >"$WORK/pc.txt"
	for i in $(seq "$RUNS"); do
		run_wrk "$a" "$@" >>"$WORK/pa.txt"
		run_wrk "$b" "$@" >>"$WORK/pb.txt"
		run_wrk "$c" "$@" >>"$WORK/pc.txt"
	done
	for f in pa pb pc; do sort -n -k1 "$WORK/$f.txt" | sed -n "$(((RUNS + 1) / 2))p"; done
}
label="GET customer recs n=10"
three=$(triple_runs "$SK" "$NG" "$SKC" random_customer.lua "$WORK/quiet.txt")
sk=$(echo "$three" | sed -n 1p)
ng=$(echo "$three" | sed -n 2p)
skc=$(echo "$three" | sed -n 3p)
report "$label" shopkeeper $sk
report "$label" nginx $ng
report "$label" no-precomp $skc
RATIOS+=("$(ratio "$label" "$sk" "$ng")")
RATIOS+=("$(ratio "$label (no lists)" "$skc" "$ng")")
label="GET item similar n=10"
both=$(paired_runs "$SK" "$NG" random_item.lua "$WORK/items.txt")
ski=$(echo "$both" | sed -n 1p)
ngi=$(echo "$both" | sed -n 2p)
report "$label" shopkeeper $ski
report "$label" nginx $ngi
RATIOS+=("$(ratio "$label" "$ski" "$ngi")")
RATIOS+=("$("$PY" -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); \
print('%-28s customer recs / item similar: %.2f%s' % ('shopkeeper', float(a[0]) / float(b[0]), \
', per CPU second %.2f' % (float(b[6]) / float(a[6])) if float(a[6]) and float(b[6]) else ''))" "$sk" "$ski")")
label="GET customer recs 20% live"
both=$(paired_runs "$SK" "$NG" random_customer.lua "$WORK/customers.txt")
skl=$(echo "$both" | sed -n 1p)
ngl=$(echo "$both" | sed -n 2p)
report "$label" shopkeeper $skl
report "$label" nginx $ngl
RATIOS+=("$(ratio "$label" "$skl" "$ngl")")
# ---- open loop: both servers at one offered rate ------------------------------
# wrk's p99 above is taken with 32 requests in flight from one client thread
# that is itself near saturation (its core 90 to 95% busy at 85,000 req/s):
# a late answer there is often wrk's own backlog, and the faster server
# loads wrk more. The probe (event_pacer.c) asks both servers at the same
# fixed rate, half of nginx's closed-loop rate and at most PROBE_MAX, runs
# alternated: the latency each gives at equal load.
if [ -x "$PACER" ]; then
	orate=$(echo "$ng" | awk -v max="$PROBE_MAX" '{v = $1 / 2; printf "%d", v < max ? v : max}')
	: >"$WORK/oa.txt"
	: >"$WORK/ob.txt"
	for i in $(seq "$RUNS"); do
		taskset -c 1 "$PACER" probe "$PORT" "$orate" "$DURATION" "$WORK/quiet.txt" >>"$WORK/oa.txt"
		taskset -c 1 "$PACER" probe "$NPORT" "$orate" "$DURATION" "$WORK/quiet.txt" >>"$WORK/ob.txt"
	done
	RATIOS+=("$("$PY" - "$WORK/oa.txt" "$WORK/ob.txt" "$orate" <<'PY'
import re, statistics, sys
def rows(path):
    return [tuple(map(float, m)) for m in re.findall(
        r"p50 ([\d.]+) p90 ([\d.]+) p99 ([\d.]+) p99\.9 ([\d.]+) max [\d.]+ ms \((\d+) non-200\); "
        r"sent late p99 ([\d.]+) max [\d.]+ ms; from sent p99 ([\d.]+)", open(path).read())]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
med = lambda r, k: statistics.median(x[k] for x in r)
if a and b:
    print("%-28s open loop at %s req/s, shopkeeper / nginx (medians of %d): p50 %.3f / %.3f ms, "
          "p99 %.2f / %.2f ms (%.2fx), p99.9 %.2f / %.2f ms; the probe's own lateness p99 %.2f / %.2f ms; "
          "from sent, p99 %.2f / %.2f ms%s"
          % ("GET customer recs n=10", sys.argv[3], len(a), med(a, 0), med(b, 0), med(a, 2), med(b, 2),
             med(a, 2) / med(b, 2), med(a, 3), med(b, 3), med(a, 5), med(b, 5), med(a, 6), med(b, 6),
             "  (ERRORS: not comparable)" if sum(x[4] for x in a + b) else ""))
PY
)")
fi
if [ -n "$RECS_ONLY" ]; then
	echo
	printf '%s\n' "${RATIOS[@]}"
	echo
	echo "threads=$THREADS connections=$CONNS duration=${DURATION}s runs=$RUNS (medians); servers and nginx on core 0, wrk on core 1; load: $(uptime | sed 's/.*load average: //')"
	exit 0
fi
report "POST basket n=10" shopkeeper $(median_runs "$SK" basket.lua "$WORK/items.txt")
for batch in 1 100; do
	f=$(median_runs "$SK" events.lua "$WORK/customers.txt" "$WORK/items.txt" $batch)
	report "POST events batch=$batch" shopkeeper $f
	RATIOS+=("$(printf '%-28s durable events/s: %.0f (fsync per group commit)' "POST events batch=$batch" \
		"$(echo "$f" | awk -v b=$batch '{print $1 * b}')")")
done
mixed=$(mixed_run)
report "mixed: POST events batch=100" shopkeeper $(echo "$mixed" | sed -n 1p)
report "mixed: GET customer recs" shopkeeper $(echo "$mixed" | sed -n 2p)
RATIOS+=("$(printf '%-28s durable events/s: %.0f while serving %.0f recommendations/s' "mixed, at the same time" \
	"$(echo "$mixed" | sed -n 1p | awk '{print $1 * 100}')" "$(echo "$mixed" | sed -n 2p | awk '{print $1}')")")
echo
printf '%s\n' "${RATIOS[@]}"
echo
echo "threads=$THREADS connections=$CONNS duration=${DURATION}s runs=$RUNS (medians); servers and nginx on core 0, wrk on core 1; load: $(uptime | sed 's/.*load average: //')"
