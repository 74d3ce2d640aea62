#!/usr/bin/env bash
# Runs the storage engine's benchmarks N times (default 6, the fewest benchstat gives a confidence interval for) and summarises
# them with benchstat: the raw fsync rate, one hot object with 1 and 64
# producers, 1,000 objects x 4 producers, point read, KV Get/Put, a whole
# turn, opening an existing database, and memory per open database.
# Output: bench/out/store-<date>.txt (raw) and benchstat's table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
mkdir -p bench/out
out=bench/out/store-$(date -u +%Y%m%dT%H%M%SZ).txt
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
benchstat=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")
echo "load before: $(cat /proc/loadavg)" | tee "$out"
go test -run '^TestMemoryPerOpenDatabase$' -v -count 1 ./internal/store/ | grep 'per open' | tee -a "$out"
# Load benchmarks: -benchtime 3000x means 3 s of load per run.
go test -run XXX -bench 'RawFsync|HotObject|ManyObjects' -benchtime 3000x -count "$count" ./internal/store/ | tee -a "$out"
go test -run XXX -bench 'PointRead|KVGet|KVPut|Turn$|OpenExisting' -benchmem -count "$count" ./internal/store/ | tee -a "$out"
echo "load after: $(cat /proc/loadavg)" | tee -a "$out"
"$benchstat" "$out"
