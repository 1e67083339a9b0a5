#!/bin/sh
# Runs the unit test binaries and the end-to-end suite, adds up their
# closing lines and prints one: "N passed, N failed".
#   BIN=bin BUILD=build sh tests/run.sh [unit|e2e|browser]
# VALGRIND=1 runs the unit tests under valgrind memcheck; E2E_SHOPKEEPER
# replaces the binary the end-to-end tests run (make valgrind-e2e).
set -u
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
what=${1:-all}
passed=0
failed=0
crashed=0

add_counts() { # $1: output file of one suite, $2: its exit code, $3: name
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "$3: no result line (exit $2)"
		crashed=$((crashed + 1))
		return
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$3: exited $2 with no failed test"
		crashed=$((crashed + 1))
	fi
	echo "$3: $line"
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		if [ "${VALGRIND:-0}" = 1 ]; then
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
				"$t" >"$out" 2>&1
		else
			"$t" >"$out" 2>&1
		fi
		rc=$?
		[ $rc -ne 0 ] && cat "$out"
		add_counts "$out" $rc "$name"
	done
fi

if [ "$what" = all ] || [ "$what" = unit ]; then
	# The fuzz harnesses replay their seed corpora: every input must pass.
	for t in "$BUILD"/fuzz/replay_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t" | sed 's/^replay_//')
		if [ "${VALGRIND:-0}" = 1 ]; then
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
				"$t" "tests/fuzz/corpus/$name" >"$out" 2>&1
		else
			"$t" "tests/fuzz/corpus/$name" >"$out" 2>&1
		fi
		rc=$?
		[ $rc -ne 0 ] && cat "$out"
		add_counts "$out" $rc "fuzz corpus $name"
	done
fi

if [ "$what" = all ] || [ "$what" = e2e ]; then
	for t in tests/e2e/test_*.py; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .py)
		SHOPKEEPER="${E2E_SHOPKEEPER:-$BIN/shopkeeper}" python3 "$t" >"$out" 2>&1
		rc=$?
		[ $rc -ne 0 ] && cat "$out"
		add_counts "$out" $rc "$name"
	done
fi

if [ "$what" = all ] || [ "$what" = browser ]; then
	# The console in Chromium (make check-browser installs it): Debian's
	# python3-selenium is in Debian's own python3, which another python3
	# first on PATH (pyenv) would not see.
	py=python3
	if ! python3 -c 'import selenium' 2>/dev/null && [ -x /usr/bin/python3 ]; then
		py=/usr/bin/python3
	fi
	for t in tests/browser/test_*.py; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .py)
		BUILD="$BUILD" SHOPKEEPER="${E2E_SHOPKEEPER:-$BIN/shopkeeper}" "$py" "$t" >"$out" 2>&1
		rc=$?
		[ $rc -ne 0 ] && cat "$out"
		grep -E '^(\*\*\* SKIPPED|console load:)' "$out"
		add_counts "$out" $rc "browser $name"
	done
fi

if [ $crashed -ne 0 ]; then
	failed=$((failed + crashed))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
