#!/usr/bin/env bash
# The OCSP serving comparison of docs/benchmarks.md, end to end: jpkica's
# responder (TestBenchServe in ocsp/benchserve_test.go, fasthttp or
# net/http), nginx serving one static file of the same size, and cfssl
# ocspserve over the same pre-signed responses, each loaded in turn with
# wrk -t2 -c64 and random GETs, in interleaved rounds, on 127.0.0.1 only.
#
# Modes (MODES, default "shared pinned"):
#   shared  servers and wrk share both cores, as the machine comes;
#   pinned  each server runs on core 0 (taskset) and wrk on core 1, so that
#           the load generator does not take its CPU out of the server's.
# For each run it prints requests/s, p50, p99 and the server's CPU time per
# request (utime+stime from /proc, before and after).
#
# Settings (environment): ROUNDS (3), DURATION (10s), N (100000
# certificates), KEY (ecdsa or rsa responder key), HTTP (fasthttp or
# nethttp), WORK (a scratch directory, /tmp/jpkica-ocspbench). Needs wrk,
# nginx and Go; installs wrk and nginx-light with apt-get when missing and
# builds cfssl v1.6.5 (the version go.mod pins) into $WORK/bin.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
N=${N:-100000}
KEY=${KEY:-ecdsa}
HTTP=${HTTP:-fasthttp}
MODES=${MODES:-shared pinned}
WORK=${WORK:-/tmp/jpkica-ocspbench}
mkdir -p "$WORK/data" "$WORK/nginx"

. scripts/bench-lib.sh
if [ ! -x "$WORK/bin/cfssl" ]; then
	GOBIN="$WORK/bin" go install github.com/cloudflare/cfssl/cmd/cfssl@v1.6.5
fi
go test -c -o "$WORK/ocsp.test" ./ocsp

for mode in $MODES; do
	server_wrap="" wrk_wrap=""
	workers=2
	if [ "$mode" = pinned ]; then
		server_wrap="taskset -c 0" wrk_wrap="taskset -c 1" workers=1
	fi
	echo "== $mode: $N certificates, $KEY responder key, jpkica on $HTTP, wrk -t2 -c64 -d$DURATION"

	# jpkica: pre-signs N responses, writes the path files, responses.b64
	# and one.der into data/, then serves until killed.
	http=$HTTP
	[ "$http" = nethttp ] && http=""
	JPKICA_OCSP_BENCH_DIR="$WORK/data" JPKICA_OCSP_BENCH_N=$N JPKICA_OCSP_BENCH_KEY=$KEY \
		JPKICA_OCSP_BENCH_HTTP=$http JPKICA_OCSP_BENCH_ADDR=127.0.0.1:8082 JPKICA_OCSP_BENCH_SECONDS=86400 \
		$server_wrap "$WORK/ocsp.test" -test.run '^TestBenchServe$' -test.v -test.timeout 0 >"$WORK/jpkica.log" 2>&1 &
	jpkica=$!
	pids+=("$jpkica")
	until grep -q READY "$WORK/jpkica.log"; do
		kill -0 "$jpkica" 2>/dev/null || { cat "$WORK/jpkica.log"; exit 1; }
		sleep 1
	done

	start_nginx "$WORK/data" one.der 8090 "$workers" "$server_wrap"

	$server_wrap "$WORK/bin/cfssl" ocspserve -address 127.0.0.1 -port 8089 \
		-responses "$WORK/data/responses.b64" -loglevel 3 >"$WORK/cfssl.log" 2>&1 &
	cfssl=$!
	pids+=("$cfssl")
	until curl -s -o /dev/null "http://127.0.0.1:8089/"; do sleep 1; done

	for round in $(seq "$ROUNDS"); do
		echo "-- round $round"
		load "jpkica-$HTTP" http://127.0.0.1:8082 "$WORK/data/paths-ocsp.txt" "$jpkica" "$wrk_wrap"
		load nginx http://127.0.0.1:8090 "$WORK/data/paths-ocsp.txt" "$nginx_pids" "$wrk_wrap"
		load cfssl-ocspserve http://127.0.0.1:8089 "$WORK/data/paths-root.txt" "$cfssl" "$wrk_wrap"
	done
	stop_all
done
