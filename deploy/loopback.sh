#!/bin/sh
# The deploy/ topology without containers, on loopback ports: a Redis
# primary and replica (appendonly yes, appendfsync always) watched by three
# Redis Sentinels; `shopkeeper serve` replicas that share the Redis stream
# as their event log (--event-log sentinel://..., each applying the whole
# log into its own state) and one model directory; Debian's nginx in front,
# round-robin, with deploy/nginx/shopkeeper.conf.template (rendered only for
# ports and paths): the same routing as compose.yaml.
#
#   deploy/loopback.sh up DIR              start everything (trains the demo model
#                                          into DIR/models first if MODELS has none)
#   deploy/loopback.sh down DIR            stop everything (SIGTERM: replicas drain)
#   deploy/loopback.sh scale DIR N         N replicas behind nginx (1..the ports given):
#                                          new ones join once /readyz says they caught up
#   deploy/loopback.sh stop-replica DIR N  stop replica N (SIGTERM)
#   deploy/loopback.sh kill-replica DIR N  kill -9 replica N
#   deploy/loopback.sh start-replica DIR N start it again (a missing state dir is
#                                          rebuilt from the model and the log)
#   deploy/loopback.sh kill-redis DIR      kill -9 the Redis primary (Sentinel fails over)
#   deploy/loopback.sh publish DIR         train a new model version, with the events
#                                          of the log, roll it out and trim the log
#                                          (deploy/publish-model.sh)
#   deploy/loopback.sh status DIR
#
# Environment: SHOPKEEPER (binary, default bin/shopkeeper), LB_PORT (8080),
# REPLICA_PORTS (ports for every replica there may be, "8081 8082 8083 8084
# 8085"), REPLICAS (started by up, 3), REDIS_PORTS (primary and replica,
# "6379 6380"), SENTINEL_PORTS ("26379 26380 26381"), THREADS (per replica,
# 1), MAX_LAG (seconds, 5), NGINX (nginx), MODELS (directory of model
# versions, default DIR/models). Ports and pids are kept in DIR, so later
# commands need only DIR. Needs redis-server, redis-sentinel, redis-cli
# (apt-get install redis-server redis-sentinel) and nginx.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "loopback: $*" >&2; }
usage() { sed -n '2,34p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
DIR=$2
SK=${SHOPKEEPER:-$ROOT/bin/shopkeeper}
case "$SK" in /*) ;; *) SK=$(pwd)/$SK ;; esac
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
MASTER=shopkeeper # the Sentinel master name
DEMO="$ROOT/data/demo"
DEMO_ARGS="--interactions $DEMO/online-retail-sample.csv --catalog $DEMO/catalog.csv
 --customers $DEMO/customers.csv --columns customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice,title=Description,birth_date=BirthDate"

http_ok() { # URL: 0 when it answers 200 (curl, or python3 when curl is missing)
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null -m 2 "$1" 2>/dev/null
	else
		python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
	fi
}

wait_until() { # SECONDS WHAT PIDFILE COMMAND...: polls COMMAND every 50 ms
	limit=$(($1 * 20)) what=$2 pidfile=$3
	shift 3
	i=0
	while ! "$@" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt $limit ]; then say "$what: not within $((limit / 20)) s"; return 1; fi
		if [ -n "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null || echo 0)" 2>/dev/null; then
			say "$what: the process exited"; return 1
		fi
		sleep 0.05
	done
}

load_ports() {
	[ -f "$DIR/ports" ] || { say "$DIR: nothing started here"; exit 1; }
	. "$DIR/ports"
}

replica_port() { # N: the Nth of REPLICA_PORTS
	n=$1
	set -- $REPLICA_PORTS
	[ "$n" -ge 1 ] && [ "$n" -le $# ] || { say "replica $n: only $# ports in REPLICA_PORTS"; exit 2; }
	eval echo "\${$n}"
}

# ---- Redis, Sentinel ----------------------------------------------------------

start_redis() { # N PORT [replicaof PORT]
	d="$DIR/redis-$1"
	mkdir -p "$d"
	extra=""
	[ $# -lt 3 ] || extra="--replicaof 127.0.0.1 $4"
	# The log's durability (docs/operations.md): every write fsync'ed to the
	# AOF before Redis answers, nothing evicted.
	redis-server --port "$2" --bind 127.0.0.1 --dir "$d" --save "" \
		--appendonly yes --appendfsync always --maxmemory-policy noeviction \
		--daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" $extra
	wait_until 10 "redis $1 on port $2" "" redis-cli -p "$2" ping >/dev/null || {
		cat "$d/redis.log" >&2; exit 1; }
	say "redis $1 on 127.0.0.1:$2 $( [ -z "$extra" ] && echo primary || echo replica)"
}

start_sentinel() { # N PORT
	d="$DIR/sentinel-$1"
	mkdir -p "$d"
	# Sentinel rewrites its own file (what it learns of replicas, epochs).
	cat >"$d/sentinel.conf" <<CONF
port $2
bind 127.0.0.1
daemonize yes
pidfile $d/sentinel.pid
logfile $d/sentinel.log
dir $d
sentinel monitor $MASTER 127.0.0.1 $REDIS_PORT_1 2
sentinel down-after-milliseconds $MASTER 2000
sentinel failover-timeout $MASTER 10000
sentinel parallel-syncs $MASTER 1
CONF
	redis-sentinel "$d/sentinel.conf"
	wait_until 10 "sentinel $1 on port $2" "" sentinel_knows "$2" || {
		cat "$d/sentinel.log" >&2; exit 1; }
}

sentinel_knows() { # PORT: the sentinel names a primary
	redis-cli -p "$1" sentinel get-master-addr-by-name "$MASTER" | grep -q 127.0.0.1
}

replica_linked() { # PORT: the Redis replica is in sync with its primary
	redis-cli -p "$1" info replication | grep -q "master_link_status:up"
}

stop_redis_pid() { # PIDFILE: SIGTERM (Redis fsyncs the AOF and exits)
	[ -f "$1" ] || return 0
	pid=$(cat "$1")
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$1"
}

# ---- the replicas ------------------------------------------------------------------

start_replica() {
	n=$1
	port=$(replica_port "$n")
	mkdir -p "$DIR/state-$n"
	# Every flag through the environment, as in the container image.
	SHOPKEEPER_MODEL="$MODELS/current" SHOPKEEPER_STATE="$DIR/state-$n" \
	SHOPKEEPER_LISTEN="127.0.0.1:$port" SHOPKEEPER_THREADS="${THREADS:-1}" \
	SHOPKEEPER_DRAIN_TIMEOUT=5 SHOPKEEPER_EVENT_LOG="$EVENT_LOG" \
	SHOPKEEPER_MAX_LAG="$MAX_LAG" \
		"$SK" serve >>"$DIR/replica-$n.log" 2>&1 </dev/null &
	echo $! >"$DIR/replica-$n.pid"
	# /readyz answers 200 once the replica has caught up with the log.
	wait_until 60 "replica $n ready on http://127.0.0.1:$port/readyz" "$DIR/replica-$n.pid" \
		http_ok "http://127.0.0.1:$port/readyz" || { cat "$DIR/replica-$n.log" >&2; exit 1; }
	say "replica $n on 127.0.0.1:$port (pid $(cat "$DIR/replica-$n.pid"))"
}

stop_pid() { # PIDFILE [SIGNAL]: SIGTERM (or SIGNAL), wait up to 10 s, then SIGKILL
	[ -f "$1" ] || return 0
	pid=$(cat "$1")
	if kill -"${2:-TERM}" "$pid" 2>/dev/null; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

set_replicas() { # N: remembered for later commands
	sed -i "s/^REPLICAS=.*/REPLICAS=$1/" "$DIR/ports"
	REPLICAS=$1
}

# ---- nginx ---------------------------------------------------------------------------

write_upstreams() { # the `server` lines of replicas 1..REPLICAS
	: >"$DIR/nginx/upstream.conf.tmp"
	n=1
	while [ $n -le "$REPLICAS" ]; do
		echo "server 127.0.0.1:$(replica_port $n) max_fails=1 fail_timeout=5s;" >>"$DIR/nginx/upstream.conf.tmp"
		n=$((n + 1))
	done
	mv "$DIR/nginx/upstream.conf.tmp" "$DIR/nginx/upstream.conf"
}

nginx_reload() {
	"$NGINX" -t -q -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" || { say "nginx -t failed"; exit 1; }
	"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -s reload
}

render() { # the template with only the SHOPKEEPER_* names replaced
	sed -e "s|\${SHOPKEEPER_LB_LISTEN}|127.0.0.1:$LB_PORT|" \
	    -e "s|\${SHOPKEEPER_LB_ACCESS_LOG}|$DIR/nginx/access.log|" \
	    -e "s|\${SHOPKEEPER_UPSTREAM_SERVERS}|$DIR/nginx/upstream.conf|" \
	    "$ROOT/deploy/nginx/shopkeeper.conf.template" >"$DIR/nginx/shopkeeper.conf"
	if grep -n '\${SHOPKEEPER_[A-Z0-9_]*}' "$DIR/nginx/shopkeeper.conf" >&2; then
		say "a template variable was left unrendered"; exit 1
	fi
	write_upstreams
	cat >"$DIR/nginx/nginx.conf" <<CONF
# Generated by deploy/loopback.sh: a minimal main file around
# deploy/nginx/shopkeeper.conf.template.
worker_processes 1;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    include $DIR/nginx/shopkeeper.conf;
}
CONF
}

all_replicas() { # every replica that may have a pid file
	set -- $REPLICA_PORTS
	seq 1 $#
}

case "$cmd" in
up)
	for t in redis-server redis-sentinel redis-cli; do
		command -v $t >/dev/null || { say "$t is missing (apt-get install redis-server redis-sentinel)"; exit 1; }
	done
	if ! "$SK" serve --help | grep -q -- "--event-log"; then
		say "$SK serve has no --event-log: this build cannot share live state (issue 13)"
		exit 1
	fi
	mkdir -p "$DIR/nginx/tmp"
	DIR=$(cd "$DIR" && pwd)
	chmod 755 "$DIR" "$DIR/nginx" # nginx's workers run as nobody when started by root
	MODELS=${MODELS:-$DIR/models}
	set -- ${REDIS_PORTS:-6379 6380}
	[ $# = 2 ] || { say "REDIS_PORTS: expected two ports (primary, replica)"; exit 2; }
	r1=$1 r2=$2
	set -- ${SENTINEL_PORTS:-26379 26380 26381}
	[ $# = 3 ] || { say "SENTINEL_PORTS: expected three ports"; exit 2; }
	s1=$1 s2=$2 s3=$3
	rports=${REPLICA_PORTS:-8081 8082 8083 8084 8085}
	cat >"$DIR/ports" <<PORTS
LB_PORT=${LB_PORT:-8080}
REPLICA_PORTS="$rports"
REPLICAS=${REPLICAS:-3}
REDIS_PORT_1=$r1
REDIS_PORT_2=$r2
SENTINEL_PORTS="$s1 $s2 $s3"
MAX_LAG=${MAX_LAG:-5}
EVENT_LOG="sentinel://127.0.0.1:$s1,127.0.0.1:$s2,127.0.0.1:$s3/$MASTER"
MODELS=$MODELS
PORTS
	load_ports
	start_redis 1 "$REDIS_PORT_1"
	start_redis 2 "$REDIS_PORT_2" replicaof "$REDIS_PORT_1"
	wait_until 10 "redis replica in sync" "" replica_linked "$REDIS_PORT_2" || exit 1
	n=1
	for s in $SENTINEL_PORTS; do start_sentinel $n "$s"; n=$((n + 1)); done
	say "sentinels on $SENTINEL_PORTS watch $MASTER; event log $EVENT_LOG"
	if [ ! -e "$MODELS/current" ]; then
		say "training the demo model into $MODELS"
		SHOPKEEPER="$SK" "$ROOT/deploy/publish-model.sh" "$MODELS" -- $DEMO_ARGS >/dev/null 2>"$DIR/train.log" || { cat "$DIR/train.log" >&2; exit 1; }
	fi
	n=1
	while [ $n -le "$REPLICAS" ]; do start_replica $n; n=$((n + 1)); done
	render
	"$NGINX" -t -q -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" ||
		{ say "nginx -t failed"; exit 1; }
	"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" # daemonises; pid in nginx.pid
	wait_until 10 "nginx" "$DIR/nginx/nginx.pid" http_ok "http://127.0.0.1:$LB_PORT/lb-healthz" || {
		cat "$DIR/nginx/error.log" >&2; exit 1; }
	say "nginx on 127.0.0.1:$LB_PORT (pid $(cat "$DIR/nginx/nginx.pid")), round-robin over $REPLICAS replicas"
	;;
down)
	load_ports
	if [ -f "$DIR/nginx/nginx.pid" ]; then
		pid=$(cat "$DIR/nginx/nginx.pid")
		kill -QUIT "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for n in $(all_replicas); do stop_pid "$DIR/replica-$n.pid"; done
	for n in 1 2 3; do stop_redis_pid "$DIR/sentinel-$n/sentinel.pid"; done
	for n in 1 2; do stop_redis_pid "$DIR/redis-$n/redis.pid"; done
	say "stopped"
	;;
scale)
	[ $# = 3 ] || usage
	load_ports
	want=$3
	max=$(all_replicas | tail -n 1)
	case "$want" in '' | *[!0-9]*) usage ;; esac
	[ "$want" -ge 1 ] && [ "$want" -le "$max" ] || { say "scale: 1 to $max replicas (REPLICA_PORTS)"; exit 2; }
	if [ "$want" -gt "$REPLICAS" ]; then
		# New replicas join the balancer only once they have caught up.
		n=$((REPLICAS + 1))
		while [ $n -le "$want" ]; do start_replica $n; n=$((n + 1)); done
		set_replicas "$want"
		write_upstreams
		nginx_reload
	elif [ "$want" -lt "$REPLICAS" ]; then
		# Out of the balancer first, then drained and stopped.
		old=$REPLICAS
		set_replicas "$want"
		write_upstreams
		nginx_reload
		sleep 1
		n=$((want + 1))
		while [ $n -le "$old" ]; do stop_pid "$DIR/replica-$n.pid"; n=$((n + 1)); done
	fi
	say "$REPLICAS replicas behind nginx"
	;;
stop-replica | kill-replica)
	[ $# = 3 ] || usage
	load_ports
	if [ "$cmd" = kill-replica ]; then stop_pid "$DIR/replica-$3.pid" KILL; else stop_pid "$DIR/replica-$3.pid"; fi
	say "replica $3 stopped"
	;;
start-replica)
	[ $# = 3 ] || usage
	load_ports
	start_replica "$3"
	;;
kill-redis)
	load_ports
	primary=$(redis-cli -p "${SENTINEL_PORTS%% *}" sentinel get-master-addr-by-name "$MASTER" | tail -n 1)
	for n in 1 2; do
		eval "p=\$REDIS_PORT_$n"
		if [ "$p" = "$primary" ]; then
			kill -KILL "$(cat "$DIR/redis-$n/redis.pid")"
			say "redis $n (primary, port $p) killed"
		fi
	done
	;;
publish)
	load_ports
	urls=""
	n=1
	while [ $n -le "$REPLICAS" ]; do
		urls="$urls${urls:+,}http://127.0.0.1:$(replica_port $n)"
		n=$((n + 1))
	done
	SHOPKEEPER="$SK" "$ROOT/deploy/publish-model.sh" "$MODELS" --notify "$urls" \
		--event-log "$EVENT_LOG" -- $DEMO_ARGS --events-from "$EVENT_LOG"
	;;
status)
	load_ports
	for n in $(all_replicas); do
		port=$(replica_port $n)
		if http_ok "http://127.0.0.1:$port/readyz"; then s=ready
		elif http_ok "http://127.0.0.1:$port/healthz"; then s="up, not ready"
		else s=down; fi
		echo "replica $n 127.0.0.1:$port $s"
	done
	for n in 1 2; do
		eval "p=\$REDIS_PORT_$n"
		role=$(redis-cli -p "$p" info replication 2>/dev/null | sed -n 's/^role:\(.*\)\r*$/\1/p' | tr -d '\r')
		echo "redis $n 127.0.0.1:$p ${role:-down}"
	done
	for s in $SENTINEL_PORTS; do
		if redis-cli -p "$s" ping >/dev/null 2>&1; then st=up; else st=down; fi
		echo "sentinel 127.0.0.1:$s $st"
	done
	if http_ok "http://127.0.0.1:$LB_PORT/lb-healthz"; then s=up; else s=down; fi
	echo "nginx 127.0.0.1:$LB_PORT $s ($REPLICAS replicas)"
	;;
*) usage ;;
esac
