# over.awk: make bench's overload runs (run.sh): per server, what is
# delivered with twice the peak offered, against the peak, and the
# 100-byte round trip p99 then, against the unloaded one (medians).
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function med(k,   i, m) {
	m = n[k]; if (m == 0) return 0
	for (i = 1; i <= m; i++) a[i] = val[k, i]
	return median(a, m)
}
function add(k, v) { c = ++n[k]; val[k, c] = v }
{
	srv = $1; delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	if (v["mode"] != "relay") next
	add(srv SUBSEP v["net"] SUBSEP "pps", v["delivered_pps"])
	add(srv SUBSEP v["net"] SUBSEP "p99", v["rtt_p99_ms"])
	if (v["sent_pps"] != "") add(srv SUBSEP v["net"] SUBSEP "sent", v["sent_pps"])
}
END {
	for (s = 0; s < 2; s++) {
		srv = s ? "derper" : "derpd"
		peak = med(srv SUBSEP "peak" SUBSEP "pps")
		over = med(srv SUBSEP "2x-peak" SUBSEP "pps")
		sent = med(srv SUBSEP "2x-peak" SUBSEP "sent")
		p0 = med(srv SUBSEP "unloaded" SUBSEP "p99")
		p2 = med(srv SUBSEP "2x-peak" SUBSEP "p99")
		if (peak == 0) continue
		printf "  %-7s peak %.0f pkt/s; at 2x offered (%.0f accepted): %.0f delivered, %.0f%% of peak (goal >= 90%%)\n",
		    srv, peak, sent, over, 100 * over / peak
		printf "  %-7s 100-byte p99 unloaded %.3f ms, at 2x %.3f ms: %.1fx (goal <= 2x)\n",
		    srv, p0, p2, (p0 > 0 ? p2 / p0 : 0)
	}
}
