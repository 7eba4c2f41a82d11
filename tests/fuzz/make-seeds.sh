#!/bin/sh
# Regenerate the seed corpora in tests/fuzz/corpus/ for derpd's own
# targets: a handful of small realistic inputs each. Run from anywhere;
# the output is committed. Needs only a POSIX shell.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus
cd corpus

# bin HEX...: write the bytes spelled by hex pairs (spaces allowed).
bin() {
	h=$(echo "$*" | tr -d ' ')
	out=""
	while [ -n "$h" ]; do
		b=${h%"${h#??}"}
		h=${h#??}
		out="$out$(printf '\\%03o' "0x$b")"
	done
	printf "$out"
}

# rep BYTE N: N copies of one hex byte, as hex.
rep() {
	i=0
	while [ "$i" -lt "$2" ]; do
		printf '%s' "$1"
		i=$((i + 1))
	done
}

KEY1=$(rep 11 32)
KEY2=$(rep 22 32)
NONCE=$(rep 33 24)
MESH=9d2f6c3a8b1e4f5a7c0d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b

mkdir -p frame http stun clientinfo keyfile meshkey

# frame: what a client writes after the upgrade: ClientInfo (key, nonce,
# and a 56-byte box: MAC and text), then steady-state frames.
CI="02 00000070 $KEY1 $NONCE $(rep 44 56)"
DISCO="5453f09f92ac $KEY2 $NONCE $(rep 55 8)"
bin "$CI 12 00000008 0102030405060708" >frame/ping.bin
bin "$CI 04 0000005e $KEY2 $DISCO" >frame/send-disco.bin
bin "$CI 04 00000024 $KEY2 deadbeef 07 00000001 01" \
    >frame/send-preferred.bin
bin "$CI 10 00000000 11 00000020 $KEY2 0a 00000044 $KEY1 $KEY2 cafef00d" \
    >frame/mesh-watch-forward.bin
bin "$CI 20 00000003 616263 06 00000000 12 00000004 01020304" \
    >frame/unknown-then-bad-ping.bin
bin "$CI 04 00010021" >frame/send-too-large.bin

# http: request heads as derper's clients send them.
hdr() {
	for l in "$@"; do
		printf '%s\r\n' "$l"
	done
	printf '\r\n'
}
hdr "GET /derp HTTP/1.1" "Host: derp.example.com:8443" \
    "User-Agent: Go-http-client/1.1" "Connection: Upgrade" \
    "Derp-Fast-Start: 1" "Ideal-Node: 900a" "Upgrade: DERP" \
    >http/derp-fast-start.txt
hdr "GET /derp HTTP/1.1" "Host: derp.example.com" "Connection: Upgrade" \
    "Upgrade: WebSocket" "Sec-WebSocket-Version: 13" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \
    "Sec-WebSocket-Protocol: derp" >http/websocket.txt
hdr "GET /generate_204 HTTP/1.1" "Host: derp.example.com" \
    "X-Tailscale-Challenge: ts_chal-1.example:0" >http/generate-204.txt
hdr "HEAD /derp/probe?x=1 HTTP/1.0" "host:  derp.example.com  " \
    "X-Forwarded-For: 198.51.100.7" "Host: second.example" \
    >http/probe-head.txt
hdr "GET /bootstrap-dns?q=controlplane.tailscale.com HTTP/1.1" \
    "Host: derp.example.com" "Accept-Encoding: gzip" \
    >http/bootstrap-dns.txt
{ hdr "GET /derp HTTP/1.1" "Host: d" "Upgrade: DERP" "Connection: Upgrade"
  bin "$CI"; } >http/pipelined-clientinfo.bin
# No terminator within 16 KiB: HTTP_TOO_LARGE (431). It also lifts
# libFuzzer's default input cap above HTTP_MAX_HEAD for this target.
{ printf 'GET /derp HTTP/1.1\r\nCookie: '
  rep a 16400; } >http/too-large.txt

# stun: binding requests; the txid is "derpdfzzseed".
TX=6465727064667a7a73656564
bin "000100142112a442 $TX 80220008 7461696c6e6f6465 80280004 b1d8ace4" \
    >stun/tailscale.bin
bin "000100002112a442 $TX" >stun/rfc5389-bare.bin
bin "000100182112a442 $TX 8022000a 64657270642d73656564 0000" \
    "80280004 d2486353" >stun/software-fingerprint.bin
bin "000100082112a442 $TX 00060005 616c696365 000000" >stun/username-pad.bin
bin "000100082112a442 $TX 80280004 00000000" >stun/bad-fingerprint.bin

# clientinfo: the JSON inside the ClientInfo box, as Go's derp client
# marshals it (omitempty fields left out).
printf '{"version":2,"CanAckPings":true}' >clientinfo/client.json
printf '{"meshKey":"%s","version":2,"CanAckPings":true}' "$MESH" \
    >clientinfo/mesh.json
printf '{"version":2,"CanAckPings":true,"IsProber":true}' \
    >clientinfo/prober.json
printf '{"Version":1,"canackpings":null,"AppName":"derpprobe \\u00e9"}\n' \
    >clientinfo/mixed-case.json
printf '{"version":2} {"version":3}' >clientinfo/trailing.json

# keyfile: derper's key file, as derper and derpd write it.
printf '{"PrivateKey":"privkey:%s"}' "$MESH" >keyfile/derper.json
printf '{\n\t"PrivateKey": "privkey:%s"\n}\n' "$MESH" >keyfile/derpd.json
printf '{"privatekey":"privkey:%s","Extra":[1,{"a":null}]}' "$MESH" \
    >keyfile/lowercase-extra.json
printf '{"PrivateKey":"nodekey:%s"}' "$MESH" >keyfile/wrong-prefix.json

# meshkey: the mesh key file (64 hex, whitespace trimmed).
printf '%s\n' "$MESH" >meshkey/plain.txt
printf ' \t%s\r\n\r\n' "$MESH" | tr 'a-f' 'A-F' >meshkey/upper-crlf.txt
printf '%s0\n' "$MESH" >meshkey/too-long.txt

# acme: first byte picks the parser (0 directory, 1 order, 2 authorization,
# 3 problem, 4 Retry-After, 5 base64), the rest is what a CA sends.
mkdir -p acme
printf '\000{"newNonce":"https://ca/n","newAccount":"https://ca/a","newOrder":"https://ca/o","meta":{"externalAccountRequired":true,"profiles":{"shortlived":"s"}}}' >acme/dir
printf '\001{"status":"valid","authorizations":["https://ca/z/1"],"finalize":"https://ca/f","certificate":"https://ca/c"}' >acme/order
printf '\002{"status":"pending","identifier":{"type":"dns","value":"localhost"},"challenges":[{"type":"http-01","url":"https://ca/c/1","token":"abc_-","status":"pending"},{"type":"tls-alpn-01","url":"u","token":"t","error":{"detail":"x"}}]}' >acme/authz
printf '\003{"type":"urn:ietf:params:acme:error:badNonce","detail":"bad nonce"}' >acme/problem
printf '\004Sun, 06 Nov 1994 08:49:37 GMT' >acme/retry
printf '\00430' >acme/retry2
printf '\005c2VjcmV0LWtleQ==' >acme/b64

# apiset: first byte picks the parser (0 Tailscale devices, 1 headscale
# nodes, 2 the state file, 3 credentials, 4 an OAuth token answer).
mkdir -p apiset
printf '\000{"devices":[{"addresses":["100.64.0.1","fd7a:115c:a1e0::1"],"name":"a.tail.ts.net.","nodeKey":"nodekey:%s","authorized":true,"user":"u@example.com","tags":["tag:x"],"keyExpiryDisabled":false,"expires":"2026-06-01T00:00:00Z"},{"nodeKey":"nodekey:%s","authorized":false,"expires":"0001-01-01T00:00:00Z"},{"name":"nokey"}]}' "$KEY1" "$KEY2" >apiset/tailscale
printf '\001{"nodes":[{"id":"1","nodeKey":"nodekey:%s","ipAddresses":["100.64.0.2"],"name":"n","givenName":"g","user":{"id":"1","name":"alice","email":"a@b"},"expiry":null,"tags":["tag:a"],"forcedTags":["tag:f"],"validTags":["tag:a"]}]}' "$KEY1" >apiset/headscale
printf '\002{"version":1,"api":"tailscale","url":"u","tailnet":"-","fetched":42,"devices":[{"key":"nodekey:%s","authorized":true,"expires":0,"node":"n","user":"u","tags":["tag:x"],"addresses":["100.64.0.1"]}]}' "$KEY1" >apiset/state
printf '\003{"oauth_client_id":"k1","oauth_client_secret":"tskey-client-k1-s"}' >apiset/oauth
printf '\013{"api_key":"hskey-api-1"}' >apiset/apikey
printf '\004{"access_token":"t","token_type":"Bearer","expires_in":3600}' >apiset/token
