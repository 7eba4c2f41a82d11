#!/bin/sh
# make bench: derpd against Tailscale's Go derper (v1.102.3), side by side
# in one run, on loopback. Each server gets CPU 1, the load generator CPU 0.
# Prints one line per window and a summary of medians and ratios, then the
# callgrind instruction count per relayed packet for derpd.
# Knobs: BENCH_SECS (default 3), BENCH_ROUNDS (default 3), BENCH_PAIRS (4),
# BENCH_ONLY=real (only the derphttp section), BENCH_IDLE=0 (no idle runs),
# BENCH_SCALE=0 (no 1- vs 2-worker runs), BENCH_OVERLOAD=0 (no overload).
set -eu
B=$1
SECS=${BENCH_SECS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
PAIRS=${BENCH_PAIRS:-4}
T=$(mktemp -d /tmp/derpd-bench.XXXXXX)
trap 'kill $(cat "$T"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$T"' EXIT

GOBIN=$T/gobin
if command -v go >/dev/null 2>&1; then
	echo "bench: installing the Go derper (tailscale.com v1.102.3)"
	GOBIN=$GOBIN go install tailscale.com/cmd/derper@v1.102.3
	DERPER=$GOBIN/derper
else
	echo "bench: no Go toolchain: derpd only, no ratios"
	DERPER=
fi

port_of() {	# log file -> port from "listening on 127.0.0.1:PORT"
	for _ in $(seq 50); do
		p=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$1" |
		    head -1)
		[ -n "$p" ] && { echo "$p"; return; }
		sleep 0.1
	done
	echo "bench: server did not start; log:" >&2
	cat "$1" >&2
	exit 1
}

start_derpd() {	# mode
	rm -rf "$T/certs"
	if [ "$1" = tls ]; then
		tlsf="--certmode=manual --hostname=127.0.0.1 --certdir=$T/certs"
	else
		tlsf=
	fi
	# shellcheck disable=SC2086
	taskset -c "${SRV_CPUS:-1}" "$B/derpd" -a 127.0.0.1:0 --stun=false \
	    --http-port=-1 -c "$T/derpd.key" --workers="${SRV_WORKERS:-1}" \
	    $tlsf >"$T/derpd.log" 2>&1 &
	echo $! >"$T/server.pid"
	PORT=$(port_of "$T/derpd.log")
}

NEXTPORT=$((20000 + $$ % 10000))	# below the ephemeral range
start_derper() {	# mode
	# A fresh port each time: the last derper's may not be free yet.
	NEXTPORT=$((NEXTPORT + 1))
	PORT=$NEXTPORT
	if [ "$1" = tls ]; then
		tlsf="-certmode=manual -hostname=127.0.0.1 -certdir=$T/gocerts"
	else
		tlsf=
	fi
	# shellcheck disable=SC2086
	# GOMAXPROCS follows the CPUs taskset gives it.
	taskset -c "${SRV_CPUS:-1}" "$DERPER" -a 127.0.0.1:$PORT \
	    -http-port=-1 -stun=false -c "$T/derper.key" $tlsf \
	    >"$T/derper.log" 2>&1 &
	echo $! >"$T/server.pid"
	for _ in $(seq 50); do
		curl -sk -o /dev/null "http://127.0.0.1:$PORT/derp/probe" && break
		curl -sk -o /dev/null "https://127.0.0.1:$PORT/derp/probe" && break
		sleep 0.1
	done
}

stop_server() {
	kill "$(cat "$T/server.pid")" 2>/dev/null || true
	wait "$(cat "$T/server.pid")" 2>/dev/null || true
	rm -f "$T/server.pid"
}

run_window() {	# server mode window -> appends a result line
	if [ "$1" = derpd ]; then start_derpd "$2"; else start_derper "$2"; fi
	tflag=
	[ "$2" = tls ] && tflag=-t
	# shellcheck disable=SC2086
	line=$(taskset -c 0 "$B/loadgen" -p "$PORT" $tflag -n "$PAIRS" \
	    -d "$SECS" -w 1 -W "$3" -P "$(cat "$T/server.pid")")
	stop_server
	echo "$1 $line" | tee -a "$T/results"
}

# A meshed region of two nodes (-mesh-with both ways, the same switch for
# both servers: plain HTTP links with TS_DEBUG_USE_DERP_HTTP=1): senders
# on node A, receivers on node B, so every packet crosses the mesh link.
# Both nodes on CPU 1; the CPU counted is both nodes'.
openssl rand -hex 32 >"$T/mesh.key"
chmod 600 "$T/mesh.key"
start_mesh() {	# server
	PA=$((21000 + $$ % 20000))
	PB=$((PA + 1))
	list="127.0.0.1:$PA,127.0.0.1:$PB"
	for n in a b; do
		[ $n = a ] && p=$PA || p=$PB
		if [ "$1" = derpd ]; then
			TS_DEBUG_USE_DERP_HTTP=1 taskset -c 1 "$B/derpd" \
			    -a 127.0.0.1:$p --stun=false --http-port=-1 \
			    -c "$T/mesh-$n.key" --workers=1 \
			    -mesh-psk-file "$T/mesh.key" -mesh-with "$list" \
			    >"$T/mesh-$n.log" 2>&1 &
		else
			TS_DEBUG_USE_DERP_HTTP=1 taskset -c 1 "$DERPER" \
			    -a 127.0.0.1:$p -http-port=-1 -stun=false \
			    -c "$T/mesh-go-$n.key" -mesh-psk-file "$T/mesh.key" \
			    -mesh-with "$list" >"$T/mesh-$n.log" 2>&1 &
		fi
		echo $! >"$T/mesh-$n.pid"
	done
	# Meshed when each node's link watches the other (derp_watchers);
	# derper's first dial may have come before its peer listened, and it
	# retries after 5 s, so wait up to 15 s.
	for _ in $(seq 150); do
		wa=$(curl -s "http://127.0.0.1:$PA/debug/varz" |
		    sed -n 's/^derp_watchers \([0-9]*\)$/\1/p')
		wb=$(curl -s "http://127.0.0.1:$PB/debug/varz" |
		    sed -n 's/^derp_watchers \([0-9]*\)$/\1/p')
		if [ "${wa:-0}" -ge 1 ] && [ "${wb:-0}" -ge 1 ]; then
			sleep 0.5
			return
		fi
		sleep 0.1
	done
	echo "bench: the two $1 nodes did not mesh; logs:" >&2
	cat "$T/mesh-a.log" "$T/mesh-b.log" >&2
	exit 1
}

stop_mesh() {
	for n in a b; do
		kill "$(cat "$T/mesh-$n.pid")" 2>/dev/null || true
		wait "$(cat "$T/mesh-$n.pid")" 2>/dev/null || true
		rm -f "$T/mesh-$n.pid"
	done
}

run_mesh_window() {	# server window -> appends a result line
	start_mesh "$1"
	line=$(taskset -c 0 "$B/loadgen" -p "$PA" -R "$PB" -n "$PAIRS" \
	    -d "$SECS" -w 1 -W "$2" -P "$(cat "$T/mesh-a.pid")" \
	    -Q "$(cat "$T/mesh-b.pid")" | sed 's/mode=http/mode=mesh-http/')
	stop_mesh
	echo "$1 $line" | tee -a "$T/results"
}

if [ "${BENCH_ONLY:-all}" != real ]; then
: >"$T/results"
for w in 32 0; do
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		if [ $((r % 2)) = 0 ]; then order="derpd derper"
		else order="derper derpd"; fi
		for s in $order; do
			[ "$s" = derper ] && [ -z "$DERPER" ] && continue
			run_mesh_window "$s" "$w"
		done
		r=$((r + 1))
	done
done
for mode in http tls; do
	for w in 32 0; do
		r=0
		while [ $r -lt "$ROUNDS" ]; do
			# ABBA order cancels slow drift of the machine.
			if [ $((r % 2)) = 0 ]; then order="derpd derper"
			else order="derper derpd"; fi
			for s in $order; do
				[ "$s" = derper ] && [ -z "$DERPER" ] && continue
				run_window "$s" "$mode" "$w"
			done
			r=$((r + 1))
		done
	done
done

echo
echo "summary (medians; window=0 is a flood, window=32 keeps 32 packets"
echo "in flight per pair as derpprobe's bandwidth probe does):"
awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	srv = $1; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	k = v["mode"] " window=" v["window"]
	keys[k] = 1
	n[srv, k]++; pps[srv, k, n[srv, k]] = v["delivered_pps"]
	cpu[srv, k, n[srv, k]] = v["server_cpu_us_per_pkt"]
}
END {
	for (k in keys) {
		for (s = 0; s < 2; s++) {
			srv = s ? "derper" : "derpd"
			m = n[srv, k]; if (m == 0) continue
			for (i = 1; i <= m; i++) { a[i] = pps[srv, k, i]; c[i] = cpu[srv, k, i] }
			mp[srv] = median(a, m); mc[srv] = median(c, m)
			printf "  %-22s %-7s %9.0f pkt/s  %7.3f us CPU/pkt\n", k, srv, mp[srv], mc[srv]
		}
		if (n["derper", k] > 0 && mp["derper"] > 0)
			printf "  %-22s ratio   %9.2fx pkt/s  %7.2fx CPU/pkt (derpd/derper)\n", k,
			    mp["derpd"] / mp["derper"], mc["derpd"] / mc["derper"]
	}
}' "$T/results"

fi

# ---- the real client: tailscale.com's derphttp as the generator -------
# (tests/interop/cmd/derpload): one Send, one frame, one write (one TLS
# record) per packet, as real nodes send. Server on CPU 1, generator on
# CPU 0; 4 pairs, 32 in flight each, 1200-byte packets, with 100-byte
# round trips measured meanwhile (the server under a CPU quota, below);
# idle clients at 5,000 and 10,000 (the
# slope is the cost of one more); accepts. BENCH_IDLE=0 skips idle.
if [ -n "$DERPER" ]; then
	echo
	echo "bench: building derpload (derphttp clients)"
	(cd "$(dirname "$0")/../interop" && go build -o "$T/derpload" \
	    ./cmd/derpload)
	DL=$T/derpload
	: >"$T/real"
	# The server is made the bottleneck: a CPU quota of BENCH_QUOTA percent
	# of one core (default 30) through the cgroup v1 cpu controller, for
	# the relay and accept runs; without it the Go generator saturates
	# first and both servers look alike. The quota's period is 10 ms, so
	# a throttled server stalls at most 7 ms at a time: with the default
	# 100 ms period every loaded round trip's p99 was the 70 ms stall.
	QUOTA=${BENCH_QUOTA:-30}
	CG=/sys/fs/cgroup/cpu/derpbench-$$
	if mkdir "$CG" 2>/dev/null &&
	    echo 10000 >"$CG/cpu.cfs_period_us" &&
	    echo $((QUOTA * 100)) >"$CG/cpu.cfs_quota_us"; then
		echo "bench: server CPU quota $QUOTA% of a core ($CG)"
		trap 'kill $(cat "$T"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 0.2; rmdir "$CG" 2>/dev/null; rm -rf "$T"' EXIT
	else
		echo "bench: no cgroup cpu controller: no server quota (the generator may saturate first)"
		CG=
	fi
	real_start() {	# server mode [quota]
		if [ "$1" = derpd ]; then start_derpd "$2"; CA=$T/certs/127.0.0.1.crt
		else start_derper "$2"; CA=$T/gocerts/127.0.0.1.crt; fi
		if ! kill -0 "$(cat "$T/server.pid")" 2>/dev/null; then
			echo "bench: $1 ($2) did not start; log:" >&2
			cat "$T/derpd.log" "$T/derper.log" 2>/dev/null | tail -20 >&2
			exit 1
		fi
		if [ -n "$CG" ] && [ "${3:-}" = quota ]; then
			echo "$(cat "$T/server.pid")" >"$CG/cgroup.procs"
		fi
		if [ "$2" = tls ]; then URL=https://127.0.0.1:$PORT/derp; CAF="-ca $CA"
		else URL=http://127.0.0.1:$PORT/derp; CAF=; fi
	}
	for mode in http tls; do
		r=0
		while [ $r -lt "$ROUNDS" ]; do
			if [ $((r % 2)) = 0 ]; then order="derpd derper"
			else order="derper derpd"; fi
			for s in $order; do
				real_start "$s" "$mode" quota
				# shellcheck disable=SC2086
				taskset -c 0 "$DL" -url "$URL" $CAF -mode relay \
				    -pairs "$PAIRS" -window 32 -secs "$SECS" -probe \
				    -pid "$(cat "$T/server.pid")" \
				    -label "$s net=$mode " | tee -a "$T/real"
				# shellcheck disable=SC2086
				taskset -c 0 "$DL" -url "$URL" $CAF -mode accept \
				    -n 2000 -pid "$(cat "$T/server.pid")" \
				    -label "$s net=$mode " | tee -a "$T/real"
				stop_server
			done
			r=$((r + 1))
		done
		if [ "${BENCH_IDLE:-1}" = 1 ]; then
			for s in derpd derper; do
				for n in 5000 10000; do
					real_start "$s" "$mode"
					# shellcheck disable=SC2086
					"$DL" -url "$URL" $CAF -mode idle -n $n \
					    -pid "$(cat "$T/server.pid")" \
					    -label "$s net=$mode " | tee -a "$T/real"
					stop_server
				done
			done
		fi
	done
	echo
	echo "real client (derphttp), medians; ratio = derpd / derper:"
	awk -f "$(dirname "$0")/real.awk" "$T/real"

	# Overload (TLS): for each server, 100-byte round trips alone
	# (unloaded), then at its peak (32 in flight per pair, closed loop),
	# then with the packets offered open loop at twice that peak, as
	# senders that do not wait for anyone would (quota as above).
	# Goals: delivered at 2x >= 90% of the peak; p99 at 2x <= 2x unloaded.
	if [ "${BENCH_OVERLOAD:-1}" = 1 ] && [ -n "$CG" ]; then
		: >"$T/over"
		r=0
		while [ $r -lt "$ROUNDS" ]; do
			if [ $((r % 2)) = 0 ]; then order="derpd derper"
			else order="derper derpd"; fi
			for s in $order; do
				real_start "$s" tls quota
				# shellcheck disable=SC2086
				taskset -c 0 "$DL" -url "$URL" $CAF -mode relay \
				    -pairs 0 -secs "$SECS" -probe \
				    -pid "$(cat "$T/server.pid")" \
				    -label "$s net=unloaded " | tee -a "$T/over"
				# shellcheck disable=SC2086
				line=$(taskset -c 0 "$DL" -url "$URL" $CAF \
				    -mode relay -pairs "$PAIRS" -window 32 \
				    -secs "$SECS" -probe \
				    -pid "$(cat "$T/server.pid")" \
				    -label "$s net=peak ")
				echo "$line" | tee -a "$T/over"
				peak=$(echo "$line" |
				    sed -n 's/.*delivered_pps=\([0-9]*\).*/\1/p')
				# shellcheck disable=SC2086
				taskset -c 0 "$DL" -url "$URL" $CAF -mode relay \
				    -pairs "$PAIRS" -rate $((peak * 2)) \
				    -secs "$SECS" -probe \
				    -pid "$(cat "$T/server.pid")" \
				    -label "$s net=2x-peak " | tee -a "$T/over"
				stop_server
			done
			r=$((r + 1))
		done
		echo
		echo "overload (TLS, quota $QUOTA% in 10 ms periods); medians:"
		awk -f "$(dirname "$0")/real.awk" "$T/over"
		awk -f "$(dirname "$0")/over.awk" "$T/over"
	fi

	# Both cores: 1 worker under a quota of QUOTA% of a core, then 2
	# workers under 2 x QUOTA% (each worker the same share), plain HTTP,
	# on CPUs 0-1; the generator runs unpinned and gets the same CPU in
	# both runs (what the server's quota leaves). The Go derper likewise
	# (GOMAXPROCS follows taskset). Scaling = 2-worker pkt/s / 1-worker.
	if [ "${BENCH_SCALE:-1}" = 1 ] && [ -n "$CG" ]; then
		: >"$T/scale"
		for nw in 1 2; do
			echo $((QUOTA * nw * 100)) >"$CG/cpu.cfs_quota_us"
			r=0
			while [ $r -lt "$ROUNDS" ]; do
				if [ $((r % 2)) = 0 ]; then order="derpd derper"
				else order="derper derpd"; fi
				for s in $order; do
					SRV_CPUS=0,1 SRV_WORKERS=$nw \
					    real_start "$s" http quota
					"$DL" -url "$URL" -mode relay \
					    -pairs $((PAIRS * 2)) -window 32 \
					    -secs "$SECS" \
					    -pid "$(cat "$T/server.pid")" \
					    -label "$s net=http/${nw}w " |
					    tee -a "$T/scale"
					stop_server
				done
				r=$((r + 1))
			done
		done
		unset SRV_CPUS SRV_WORKERS
		echo $((QUOTA * 100)) >"$CG/cpu.cfs_quota_us"
		echo
		echo "workers: 1 under $QUOTA% of a core, 2 under $((QUOTA * 2))%" \
		    "(CPUs 0-1), $((PAIRS * 2)) pairs; medians:"
		awk -f "$(dirname "$0")/real.awk" "$T/scale"
		awk -f "$(dirname "$0")/scale.awk" "$T/scale"
	fi
fi

if command -v valgrind >/dev/null 2>&1; then
	echo
	echo "callgrind: derpd instructions per relayed packet (plain HTTP,"
	echo "1 worker, 1 pair, window 16; difference of 20k and 60k packets):"
	for count in 20000 60000; do
		valgrind --tool=callgrind --callgrind-out-file="$T/cg.$count" \
		    "$B/derpd" -a 127.0.0.1:0 --stun=false --http-port=-1 \
		    -c "$T/derpd.key" --workers=1 >"$T/cg.log" 2>&1 &
		echo $! >"$T/server.pid"
		PORT=$(port_of "$T/cg.log")
		"$B/loadgen" -p "$PORT" -n 1 -c $count -W 16 >/dev/null
		stop_server
	done
	ir() { sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$1"; }
	a=$(ir "$T/cg.20000"); b=$(ir "$T/cg.60000")
	echo "  total Ir: $a (20k), $b (60k); per packet: $(( (b - a) / 40000 ))"
fi
