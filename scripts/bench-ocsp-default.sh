#!/usr/bin/env bash
# OCSP as a new user gets it, against nginx, end to end: `jpkica serve` on
# its embedded defaults (no config file: the status listener on
# 127.0.0.1:8080 and its default HTTP stack), the same with
# listen.status_stack: nethttp (the net/http stack, on 127.0.0.1:8081),
# and nginx serving one static file of the size of a response
# (127.0.0.1:8090), each loaded in turn with wrk -t2 -c64 and a random GET
# over the pre-signed responses of N seeded certificates, in interleaved
# rounds. Results go to stdout, one line per run, then the medians.
#
# Settings (environment): ROUNDS (5), DURATION (10s), N (200 certificates),
# MODE (shared: servers and wrk on both cores; pinned: servers on core 0,
# wrk on core 1), WORK (a scratch directory, /tmp/jpkica-defaultbench,
# emptied first). Needs wrk, nginx, openssl, sqlite3 and Go; installs wrk
# and nginx-light with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
N=${N:-200}
MODE=${MODE:-shared}
WORK=${WORK:-/tmp/jpkica-defaultbench}
rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/default" "$WORK/issuers" "$WORK/static"

. scripts/bench-lib.sh
go build -o "$WORK/bin/jpkica" ./cmd/jpkica
jpkica=$WORK/bin/jpkica

server_wrap="" wrk_wrap="" workers=2
if [ "$MODE" = pinned ]; then
	server_wrap="taskset -c 0" wrk_wrap="taskset -c 1" workers=1
fi

# The default deployment: embedded defaults in $WORK/default (./jpkica-data),
# N synthetic certificates. The net/http one is a copy of it whose config
# file sets the stack and moves the listeners.
(cd "$WORK/default" && "$jpkica" dev seed --certificates "$N" --revoked 0.1 >/dev/null 2>&1 &&
	"$jpkica" issuers --out "$WORK/issuers" >/dev/null 2>&1)
cp -r "$WORK/default" "$WORK/nethttp"
cat >"$WORK/nethttp/jpkica.yaml" <<CONF
listen:
  api: 127.0.0.1:8444
  status: 127.0.0.1:8081
  status_stack: nethttp
CONF

# paths.txt: one GET path per certificate, /ocsp/ and the URL-escaped
# base64 of an OCSP request (SHA-1 CertID, no nonce) made by openssl.
sqlite3 "$WORK/default/jpkica-data/jpkica.db" \
	"SELECT serial_hex, ca_label FROM certificates WHERE cert_type <> 'terminal' ORDER BY serial_hex LIMIT $N" |
	while IFS='|' read -r serial label; do
		openssl ocsp -issuer "$WORK/issuers/$label.pem" -serial "0x$serial" -no_nonce -reqout /dev/stdout 2>/dev/null |
			base64 -w0 | sed 's|/|%2F|g; s|+|%2B|g; s|=|%3D|g; s|^|/ocsp/|'
		echo
	done >"$WORK/paths.txt"

(cd "$WORK/default" && exec $server_wrap "$jpkica" serve) >"$WORK/default.log" 2>&1 &
default_pid=$!
pids+=("$default_pid")
(cd "$WORK/nethttp" && exec $server_wrap "$jpkica" serve --config jpkica.yaml) >"$WORK/nethttp.log" 2>&1 &
nethttp_pid=$!
pids+=("$nethttp_pid")

# Wait until both answer every path, then keep one answer for nginx.
for base in http://127.0.0.1:8080 http://127.0.0.1:8081; do
	for i in $(seq 120); do
		bad=0
		while read -r p; do
			code=$(curl -s -o /dev/null -w '%{http_code}' "$base$p") || code=0
			[ "$code" = 200 ] || { bad=1; break; }
		done <"$WORK/paths.txt"
		[ $bad = 0 ] && break
		[ "$i" = 120 ] && { echo "$base never answered every path" >&2; exit 1; }
		sleep 1
	done
done
curl -s -o "$WORK/static/one.der" "http://127.0.0.1:8080$(head -1 "$WORK/paths.txt")"
start_nginx "$WORK/static" one.der 8090 "$workers" "$server_wrap"

echo "== $MODE: $N certificates, $(stat -c %s "$WORK/static/one.der")-octet responses, wrk -t2 -c64 -d$DURATION"
for round in $(seq "$ROUNDS"); do
	echo "-- round $round"
	load jpkica-default http://127.0.0.1:8080 "$WORK/paths.txt" "$default_pid" "$wrk_wrap"
	load nginx http://127.0.0.1:8090 "$WORK/paths.txt" "$nginx_pids" "$wrk_wrap"
	load jpkica-nethttp http://127.0.0.1:8081 "$WORK/paths.txt" "$nethttp_pid" "$wrk_wrap"
done | tee "$WORK/runs.txt"

# Medians over the rounds, and the ratio of each median to nginx's.
awk '{rps[$1] = rps[$1] " " $2; cpu[$1] = cpu[$1] " " $(NF-1)}
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		print "== medians"
		for (s in rps) m[s] = median(rps[s])
		for (s in rps) printf "%-16s %10.0f req/s  %5.2fx nginx  server CPU %6.1f us/req\n", s, m[s], m[s] / m["nginx"], median(cpu[s])
	}' <(grep -v '^--' "$WORK/runs.txt")
