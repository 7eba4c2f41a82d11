# real.awk: the table of make bench's derphttp section (run.sh): medians
# of derpload's key=value lines per server, and the idle-memory slope.
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) {
		t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function add(k, srv, v) { keys[k] = 1; c = ++n[srv, k]; val[srv, k, c] = v }
{
	srv = $1; delete v
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	net = v["net"]
	if (v["mode"] == "relay") {
		add(net " relay pkt/s", srv, v["delivered_pps"])
		add(net " relay server CPU us/pkt", srv, v["server_cpu_us_per_pkt"])
		add(net " 100-byte RTT p99 ms (loaded)", srv, v["rtt_p99_ms"])
	} else if (v["mode"] == "accept") {
		add(net " accept server CPU us/conn", srv, v["server_cpu_us_per_conn"])
	} else if (v["mode"] == "idle") {
		kb[srv, net, v["clients"]] = v["rss_after_kb"]
	}
}
END {
	printf "  %-36s %12s %12s %8s\n", "figure", "derpd", "derper", "ratio"
	for (k in keys) {
		for (s = 0; s < 2; s++) {
			srv = s ? "derper" : "derpd"; m = n[srv, k]; med[srv] = 0
			for (i = 1; i <= m; i++) a[i] = val[srv, k, i]
			if (m > 0) med[srv] = median(a, m)
		}
		printf "  %-36s %12.3f %12.3f %7.2fx\n", k, med["derpd"], med["derper"],
		    (med["derper"] > 0 ? med["derpd"] / med["derper"] : 0)
	}
	split("http tls", nl, " ")
	for (j = 1; j <= 2; j++) {
		net = nl[j]
		if (kb["derpd", net, 10000] == "" || kb["derper", net, 10000] == "") continue
		d = (kb["derpd", net, 10000] - kb["derpd", net, 5000]) * 1024 / 5000
		g = (kb["derper", net, 10000] - kb["derper", net, 5000]) * 1024 / 5000
		printf "  %-36s %12.0f %12.0f %7.2fx\n", net " idle client bytes (5k->10k slope)",
		    d, g, (g > 0 ? d / g : 0)
	}
}
