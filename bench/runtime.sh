#!/usr/bin/env bash
# Runs the object runtime's benchmarks N times (default 6) and summarises
# them with benchstat: Call0 without storage (8 callers), Call with one SQL
# upsert on one hot object (1 and 64 callers) and over 1,000 objects (4
# callers each), the first call to 10,000 objects on disk that are not
# live, and the memory of an idle live instance and of an open database.
# Output: bench/out/runtime-<date>.txt (raw) and benchstat's tables.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
mkdir -p bench/out
out=bench/out/runtime-$(date -u +%Y%m%dT%H%M%SZ).txt
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
benchstat=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")
echo "load before: $(cat /proc/loadavg)" | tee "$out"
go test -run '^TestMemoryPerInstance$' -v -count 1 . | grep 'KiB' | tee -a "$out"
go test -run XXX -bench 'Call0' -benchmem -count "$count" . | tee -a "$out"
go test -run XXX -bench 'CallSQL' -benchtime 3000x -count "$count" . | tee -a "$out"
go test -run XXX -bench 'Activation' -benchtime 1x -count "$count" . | tee -a "$out"
echo "load after: $(cat /proc/loadavg)" | tee -a "$out"
"$benchstat" "$out"
