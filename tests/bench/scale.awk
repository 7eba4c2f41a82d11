# scale.awk: make bench's worker scaling (run.sh): the median relay
# pkt/s with 2 workers (2x the CPU quota) over that with 1, per server.
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	srv = $1; delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	if (v["mode"] != "relay") next
	k = srv SUBSEP v["net"]; c = ++n[k]; pps[k, c] = v["delivered_pps"]
}
END {
	for (s = 0; s < 2; s++) {
		srv = s ? "derper" : "derpd"
		for (w = 1; w <= 2; w++) {
			k = srv SUBSEP "http/" w "w"; m = n[k]; med[w] = 0
			for (i = 1; i <= m; i++) a[i] = pps[k, i]
			if (m > 0) med[w] = median(a, m)
		}
		if (med[1] > 0)
			printf "  %-8s scaling 1 -> 2 workers: %.0f -> %.0f pkt/s, %.2fx\n",
			    srv, med[1], med[2], med[2] / med[1]
	}
}
