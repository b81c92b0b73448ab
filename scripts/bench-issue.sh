#!/usr/bin/env bash
# The issuance benchmark of docs/benchmarks.md in rounds: BenchmarkIssueAPI
# (api/bench_test.go) issues through the API over mutual TLS with the keys
# in SoftHSM2, each issuance with its first OCSP response (RSA-2048 and
# ECDSA P-256 responder), then measures the raw signing rate of the issuer
# key in the same process. For each run and responder it prints the
# issuances per second, their share of half the raw rate (the goal is 60%),
# the CPU time per issuance in raw signatures, and the CPUs the process
# kept busy; then the median share per responder.
#
# Settings (environment): ROUNDS (5), COUNT (3000 issuances per run),
# BUILDS (test binaries to interleave, default: one built from this tree),
# WORK (a scratch directory, /tmp/jpkica-issuebench). Needs SoftHSM2; installs
# it with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-3000}
WORK=${WORK:-/tmp/jpkica-issuebench}
mkdir -p "$WORK"

if ! command -v softhsm2-util >/dev/null; then
	apt-get install -y softhsm2 >/dev/null
fi
if [ -z "${BUILDS:-}" ]; then
	go test -c -o "$WORK/api.test" ./api
	BUILDS="$WORK/api.test"
fi

results="$WORK/results.txt"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
	for build in $BUILDS; do
		(cd api && "$build" -test.run='^$' -test.bench=BenchmarkIssueAPI -test.benchtime="${COUNT}x") |
			awk -v build="$(basename "$build")" -v round="$round" '
				/\/api-/ { split($1, n, "/"); resp = n[2]; ips = $7; cpu = $5 }
				/\/raw-sign-/ {
					printf "%-14s %2d %-16s %8.1f issuances/s  raw %6.0f/s  %5.1f%% of half raw  %4.2f raw signatures  %4.2f CPUs\n",
						build, round, resp, ips, $7, 100 * ips / ($7 / 2), cpu / $5, ips * cpu / 1000
				}' | tee -a "$results"
	done
done

echo "median share of half the raw rate:"
for build in $BUILDS; do
	for resp in rsa-responder ecdsa-responder; do
		awk -v b="$(basename "$build")" -v r="$resp" '$1 == b && $3 == r { sub("%", "", $8); print $8 }' "$results" |
			sort -n | awk -v b="$(basename "$build")" -v r="$resp" '
				{ v[NR] = $1 }
				END { if (NR) printf "  %-14s %-16s %5.1f%% (%d runs, %.1f-%.1f%%)\n", b, r, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR, v[1], v[NR] }'
	done
done
