#!/bin/sh
# Trains a new model into its own directory and publishes it without
# downtime: MODELS/<UTC time>/ is written, checked, then MODELS/current (a
# relative symlink the servers' --model points at) is switched atomically
# (rename(2) of a new link over the old), and each server is told to reload
# (POST /admin/reload; SIGHUP does the same). A server keeps answering from
# the old model until the new one is open and validated, so no request
# fails; the old directory stays readable for requests still on it.
#
#   publish-model.sh MODELS [--keep N] [--notify URL[,URL...]] [--key-file F]
#                    [--event-log URL] -- TRAIN-ARGS...
#
#   MODELS       the directory of model versions (a shared volume)
#   --keep N     versions kept, current included (default 3)
#   --notify     base URLs of the servers (http://replica-1:8080,...) to reload;
#                also SHOPKEEPER_NOTIFY
#   --key-file   a file holding an API key for /admin/reload (when the servers
#                have keys; the server's key file will do: its first key is
#                used); also SHOPKEEPER_ADMIN_KEY
#   --event-log  the replicas' shared event log (serve --event-log URL); also
#                SHOPKEEPER_EVENT_LOG. After publishing, the stream is trimmed
#                (shopkeeper eventlog trim) up to what the OLDEST kept version
#                covers: its meta record's event_log_position, else the last
#                entry `train --events-from` read (live_events.last_id). A
#                kept version that records neither stops the trim (said so):
#                a replica may still run it, or bootstrap from it, and must
#                find every entry after its position. Consent and erasure
#                records survive any trim (the log's compacted flags).
#   TRAIN-ARGS   passed to `shopkeeper train` (everything but --out)
#
# SHOPKEEPER (default: shopkeeper on PATH) names the binary. Exit 0 when the
# model is published, every server reloaded and the log trimmed as asked; 1
# otherwise (the new model is still published when only a reload or the trim
# failed; the message says which).
set -eu
SK=${SHOPKEEPER:-shopkeeper}
say() { echo "publish-model: $*" >&2; }
[ $# -ge 1 ] || { sed -n '2,35p' "$0" >&2; exit 2; }
models=$1
shift
keep=3
notify=${SHOPKEEPER_NOTIFY:-}
key=${SHOPKEEPER_ADMIN_KEY:-}
event_log=${SHOPKEEPER_EVENT_LOG:-}
while [ $# -gt 0 ]; do
	case "$1" in
	--keep) keep=$2; shift 2 ;;
	--notify) notify=$2; shift 2 ;;
	--event-log) event_log=$2; shift 2 ;;
	--key-file) # the first key: the server's key files allow blank lines and # comments
		key=$(grep -v '^[[:space:]]*#' "$2" | tr -d ' \t\r' | grep -m 1 .) ||
			{ say "--key-file $2: no key in it"; exit 2; }
		shift 2 ;;
	--) shift; break ;;
	*) say "unknown option $1 (train arguments go after --)"; exit 2 ;;
	esac
done
case "$keep" in '' | *[!0-9]* | 0) say "--keep: expected a positive integer"; exit 2 ;; esac

mkdir -p "$models"
version=$(date -u +%Y%m%dT%H%M%SZ)
n=0
while [ -e "$models/$version" ]; do # two runs in one second
	n=$((n + 1))
	version=$(date -u +%Y%m%dT%H%M%SZ)-$n
done
"$SK" train "$@" --out "$models/$version" --quiet >&2 || { say "training failed"; rm -rf "${models:?}/$version"; exit 1; }
"$SK" inspect "$models/$version" >/dev/null || { say "the new model does not open"; exit 1; }

ln -sfn "$version" "$models/.current.tmp"
mv -T "$models/.current.tmp" "$models/current"
say "published $models/$version as $models/current"

# Older versions beyond --keep, oldest first (names sort by time).
ls -1 "$models" | grep -E '^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$' | sort -r | tail -n +$((keep + 1)) |
	while read -r old; do
		[ "$old" = "$version" ] || rm -rf "${models:?}/$old"
	done

rc=0
if [ -n "$notify" ]; then
	for url in $(echo "$notify" | tr ',' ' '); do
		if [ -n "$key" ]; then
			out=$(curl -sS -m 30 -X POST -H "Authorization: Bearer $key" "$url/admin/reload" 2>&1) || out="curl failed: $out"
		else
			out=$(curl -sS -m 30 -X POST "$url/admin/reload" 2>&1) || out="curl failed: $out"
		fi
		case "$out" in
		*'"reloaded":true'*) say "$url reloaded" ;;
		*) say "$url did not reload: $out"; rc=1 ;;
		esac
	done
fi
# Retention: the stream keeps every entry a kept version does not cover.
if [ -n "$event_log" ]; then
	oldest= missing=
	for v in $(ls -1 "$models" | grep -E '^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$'); do
		meta=$("$SK" inspect "$models/$v" 2>/dev/null) || { missing="$missing $v"; continue; }
		pos=$(printf '%s' "$meta" | sed -n 's/.*"event_log_position":"\([0-9]*-[0-9]*\)".*/\1/p')
		[ -n "$pos" ] || pos=$(printf '%s' "$meta" | sed -n 's/.*"last_id":"\([0-9]*-[0-9]*\)".*/\1/p')
		if [ -z "$pos" ]; then missing="$missing $v"; continue; fi
		oldest=$(printf '%s\n%s\n' "$oldest" "$pos" | grep . | sort -t- -k1,1n -k2,2n | head -n 1)
	done
	if [ -n "$missing" ]; then
		say "event log not trimmed: no stream position recorded in$missing"
	elif [ -n "$oldest" ]; then
		if out=$("$SK" eventlog trim --event-log "$event_log" --min-id "$oldest" 2>&1); then
			say "event log trimmed before $oldest: $out"
		else
			say "event log trim failed: $out"; rc=1
		fi
	fi
fi
echo "$version"
exit $rc
