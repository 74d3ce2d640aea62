#!/usr/bin/env bash
# The project's test command (README: "Run the tests").
# Vet, format check, then every package under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go test -race"
go test -race -timeout 30m "$@" ./...
# The side-by-side harness's load client is its own module (bench/load:
# its chart library stays out of the library's dependencies).
echo "== bench/load"
(cd bench/load && go vet ./... && go test -race -timeout 5m ./...)
# The storage browser in headless Chromium: its own module (the browser
# driver stays out of the library's dependencies); Chromium is installed
# here when missing (or the test skips and says why).
echo "== e2e/browser"
./scripts/install-chromium.sh
(cd e2e/browser && go vet ./... && go test -race -timeout 5m ./...)
