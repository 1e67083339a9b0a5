#!/bin/sh
# Runs every tests/deploy/test_*.py (Python, standard library) against
# $BIN/shopkeeper, adds up their closing lines and prints one:
# "N passed, N failed".
set -u
BIN=${BIN:-bin}
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in tests/deploy/test_*.py; do
	name=$(basename "$t" .py)
	SHOPKEEPER="$BIN/shopkeeper" python3 "$t" >"$out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && cat "$out"
	grep -E '^[a-z0-9_]+: [0-9.]+ s' "$out" # timings the suites print
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "$name: no result line (exit $rc)"
		failed=$((failed + 1))
		continue
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$name: exited $rc with no failed test"
		failed=$((failed + 1))
	fi
	echo "$name: $line"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
