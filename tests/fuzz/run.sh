#!/bin/sh
# Run each libFuzzer target for a bounded time: make fuzz calls this.
#   run.sh FUZZDIR SECONDS NAME...
# FUZZDIR holds the fuzz_<name> binaries. Each target starts from a copy
# of tests/fuzz/corpus/<name> in FUZZDIR/corpus/<name> (libFuzzer writes
# what it finds there, never into the source tree) and also loads
# tests/fuzz/regress/<name>. Exits 1 if any target crashed, leaked, hung
# or ran out of memory.
# FUZZ_JOBS (default 1) targets run at a time, each single-process: CI
# runs two on its two cores, so every target still gets its full time.
set -u
dir=$1
secs=$2
shift 2
src=$(dirname "$0")
jobs=${FUZZ_JOBS:-1}
res=$dir/result
mkdir -p "$res"
rm -f "$res"/*

# Run one target; its report goes to $res/<name>.out, "ok" or "fail" to
# $res/<name>.rc.
run_one() {
	name=$1
	{
	bin=$dir/fuzz_$name
	work=$dir/corpus/$name
	crash=$dir/crash/$name
	log=$dir/log/$name.log
	regress=""
	mkdir -p "$work" "$crash" "$dir/log"
	if [ -d "$src/corpus/$name" ]; then
		cp -R "$src/corpus/$name/." "$work/"
	fi
	if [ -d "$src/regress/$name" ]; then
		regress=$src/regress/$name
	fi
	rm -f "$crash"/*
	t0=$(date +%s)
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$crash/" \
	    "$work" $regress >"$log" 2>&1
	rc=$?
	t=$(($(date +%s) - t0))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" |
	    sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
	if [ "$rc" -eq 0 ]; then
		printf 'fuzz_%-12s ok      %10s runs  cov %5s  ft %6s  ' \
		    "$name" "${runs:-?}" "${cov:-?}" "${ft:-?}"
		printf 'corpus %-10s %4ss\n' "${corp:-?}" "$t"
		echo ok >"$res/$name.rc"
		return 0
	fi
	echo fail >"$res/$name.rc"
	printf 'fuzz_%-12s FAILED  exit %s after %ss (log %s)\n' \
	    "$name" "$rc" "$t" "$log"
	grep -E 'ERROR: |SUMMARY: |property failed|runtime error' "$log" |
	    head -n 5 | sed 's/^/    /'
	for f in "$crash"/*; do
		[ -f "$f" ] || continue
		echo "    input:     $f"
		echo "    reproduce: $bin $f"
		echo "    keep it:   mkdir -p $src/regress/$name &&" \
		    "cp $f $src/regress/$name/"
		echo "               (then fix the parser and add a unit test)"
	done
	} >"$res/$name.out"
}

# Batches of $jobs at a time (POSIX sh has no wait -n).
set -- "$@"
while [ $# -gt 0 ]; do
	batch=""
	i=0
	while [ $# -gt 0 ] && [ "$i" -lt "$jobs" ]; do
		run_one "$1" &
		batch="$batch $1"
		shift
		i=$((i + 1))
	done
	wait
	for name in $batch; do
		cat "$res/$name.out"
	done
done
pass=0
fail=0
for f in "$res"/*.rc; do
	if [ "$(cat "$f")" = ok ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
done
echo "fuzz: $((pass + fail)) targets, $pass passed, $fail failed"
[ "$fail" -eq 0 ]
