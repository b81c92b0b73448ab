#!/usr/bin/env bash
# The issuance benchmark of docs/benchmarks.md in rounds: BenchmarkIssueAPI
# (api/bench_test.go) issues through the API over mutual TLS with the keys
# in SoftHSM2, each issuance with its first OCSP response (RSA-2048 and
# ECDSA P-256 responder), then measures the raw signing rates of the issuer
# key and of the responder key in the same process. For each run and
# responder it prints the issuances per second; their share of half the
# issuer key's raw rate (the issue's goal is 60%); their share of the raw
# rate of the issuance's two signatures, one by each key
# (1/(1/issuer + 1/responder): the same as half the issuer's rate with an
# RSA responder, the fairer bound with an ECDSA one); the CPU time per
# issuance in raw issuer signatures; and the CPUs the process kept busy.
# Then the median shares per responder.
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
				/\/raw-sign-/ { raw = $7; rawcpu = $5 }
				/\/raw-responder-sign-/ {
					pair = 1 / (1 / raw + 1 / $7)
					printf "%-14s %2d %-16s %8.1f issuances/s  raw %6.0f/s, responder %6.0f/s  %5.1f%% of half raw  %5.1f%% of pair  %4.2f raw signatures  %4.2f CPUs\n",
						build, round, resp, ips, raw, $7, 100 * ips / (raw / 2), 100 * ips / pair, cpu / rawcpu, ips * cpu / 1000
				}' | tee -a "$results"
	done
done

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%5.1f%% (%d runs, %.1f-%.1f%%)", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), NR, v[1], v[NR] }'
}
echo "median shares: of half the issuer key's raw rate | of the pair's raw rate"
for build in $BUILDS; do
	b=$(basename "$build")
	for resp in rsa-responder ecdsa-responder; do
		half=$(awk -v b="$b" -v r="$resp" '$1 == b && $3 == r { print $(NF - 11) + 0 }' "$results" | median)
		pair=$(awk -v b="$b" -v r="$resp" '$1 == b && $3 == r { print $(NF - 7) + 0 }' "$results" | median)
		printf "  %-14s %-16s %s | %s\n" "$b" "$resp" "$half" "$pair"
	done
done
