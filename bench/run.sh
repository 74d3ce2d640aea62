#!/usr/bin/env bash
# Side-by-side benchmarks: durable (`durable serve --app bench`) against
# workerd (bench/workerd: the same routes), driven by one load client
# (bench/load), interleaved A B A B over ROUNDS rounds, data of both on the
# same disk, loopback only, every step bounded in time.
#
#   bench/run.sh                    # 5 rounds of every scenario, then the report
#   ROUNDS=7 bench/run.sh
#   ONLY="hot cold" bench/run.sh    # any of: ceiling hot kv cold ws bcast idle alarm
#   NO_WORKERD=1 bench/run.sh       # durable alone
#   WRITE_DOCS=0 bench/run.sh       # keep docs/ untouched
#
# It installs workerd from npm (WORKERD_VERSION, default the version the
# peer figures were measured with) into a temporary directory; when that
# fails it says so and measures durable alone. Results: results.jsonl and
# report.md in the work directory it prints; unless WRITE_DOCS=0 the report
# replaces the generated section of docs/BENCHMARKS.md, the chart goes to
# docs/bench/, and the raw lines to docs/bench/side-by-side.jsonl.
# Every process it starts is stopped by PID.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
ONLY=${ONLY:-"ceiling hot kv cold ws bcast idle alarm"}
WORKERD_VERSION=${WORKERD_VERSION:-1.20261117.1}
WRITE_DOCS=${WRITE_DOCS:-1}
DUR=${DUR:-10s}          # hot loads
COLD_N=${COLD_N:-4000}   # new objects per cold run (all fit the open-database cap)
IDLE_N=${IDLE_N:-9000}   # idle sockets (workerd holds 2 fds each: 9,000 fit 20,000)
WS_N=${WS_N:-1000}
PORT_D=${PORT_D:-18801}
PORT_W=${PORT_W:-18802}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/durable-bench.XXXXXX")
OUT="$WORK/results.jsonl"
LOG="$WORK/log.txt"
: >"$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log "work dir: $WORK"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ build
log "building durable and the load client"
(cd "$ROOT" && go build -o "$WORK/durable" ./cmd/durable) || { log "go build ./cmd/durable failed"; exit 1; }
(cd "$ROOT/bench/load" && go build -o "$WORK/load" .) || { log "go build bench/load failed"; exit 1; }
LOAD="$WORK/load"

# ------------------------------------------------------------------ workerd
WD=""
if [ "${NO_WORKERD:-0}" != 1 ]; then
  log "installing workerd@$WORKERD_VERSION from npm into $WORK/npm"
  mkdir -p "$WORK/npm"
  if (cd "$WORK/npm" && npm init -y >/dev/null && timeout 600 npm install --no-audit --no-fund "workerd@$WORKERD_VERSION") >>"$LOG" 2>&1; then
    for c in "$WORK/npm/node_modules/@cloudflare/workerd-linux-64/bin/workerd" "$WORK/npm/node_modules/workerd/bin/workerd"; do
      if [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then WD=$c; break; fi
    done
  fi
  if [ -z "$WD" ]; then
    log "WORKERD COULD NOT BE INSTALLED (npm install workerd@$WORKERD_VERSION failed, see $LOG): measuring durable alone"
  else
    log "workerd: $("$WD" --version)"
  fi
fi
SERVERS="durable"
[ -n "$WD" ] && SERVERS="durable workerd"

# ------------------------------------------------------------------ machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -srm); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
  echo "memory: $(free -m | awk 'NR==2{print $2" MiB"}'); disk: $(df -h "$WORK" | awk 'NR==2{print $1}')"
  echo "open files: soft $(ulimit -Sn) hard $(ulimit -Hn)"
  echo "go: $(go version); durable: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo '+changes')"
  [ -n "$WD" ] && echo "workerd: $("$WD" --version) (npm workerd@$WORKERD_VERSION)"
  echo "fsync probe (dd 300 x 4 KiB, oflag=dsync): $(dd if=/dev/zero of="$WORK/probe" bs=4k count=300 oflag=dsync 2>&1 | tail -1)"
  rm -f "$WORK/probe"
} >"$WORK/machine.txt"
cat "$WORK/machine.txt" >>"$LOG"

# ------------------------------------------------------------------ servers
PID=""
BASE=""
# start SERVER NAME [durable flags...]: a fresh data directory each time.
start() {
  local server=$1 name=$2
  shift 2
  local data="$WORK/data/$name-$RANDOM$RANDOM"
  mkdir -p "$data"
  case $server in
  durable)
    BASE="http://127.0.0.1:$PORT_D"
    "$WORK/durable" serve --app bench --dir "$data" --addr "127.0.0.1:$PORT_D" "$@" >>"$WORK/durable.log" 2>&1 &
    ;;
  workerd)
    BASE="http://127.0.0.1:$PORT_W"
    (cd "$ROOT/bench/workerd" && exec "$WD" serve config.capnp --experimental \
      --directory-path "do-data=$data" --socket-addr "http=127.0.0.1:$PORT_W") >>"$WORK/workerd.log" 2>&1 &
    ;;
  esac
  PID=$!
  for _ in $(seq 1 200); do
    if curl -s -m 1 -o /dev/null "$BASE/health"; then return 0; fi
    sleep 0.05
  done
  log "$server did not come up"
  stop
  return 1
}
# stop: SIGTERM, then SIGKILL after 10 s; by PID only.
stop() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  PID=""
}
trap 'stop; exit 130' INT TERM

# measure SERVER ROUND SCENARIO SUBCOMMAND ARGS...: one bounded run of the
# load client; its JSON line goes to results.jsonl.
measure() {
  local server=$1 round=$2 scenario=$3 sub=$4
  shift 4
  log "round $round $server $scenario"
  timeout 300 "$LOAD" "$sub" -url "$BASE" -server "$server" -round "$round" -scenario "$scenario" "$@" \
    >>"$OUT" 2>>"$LOG" || log "  $scenario on $server failed or overran (exit $?)"
}

# one SERVER ROUND: every selected scenario against a fresh server each.
one() {
  local s=$1 r=$2
  if want ceiling; then
    # No object at all: GET /health measures the HTTP stack and the load
    # client on these 2 cores, the ceiling of every HTTP row.
    start "$s" ceiling && {
      measure "$s" "$r" http_ceiling_c64 hot -method GET -path /health -c 64 -d "$DUR"
      stop
    }
  fi
  if want hot; then
    start "$s" hot && {
      measure "$s" "$r" hot_counter_c1 hot -path /counter/hot/inc -c 1 -d "$DUR"
      measure "$s" "$r" hot_counter_c64 hot -path /counter/hot/inc -c 64 -d "$DUR"
      stop
    }
  fi
  if want kv; then
    start "$s" kv && {
      measure "$s" "$r" hot_kv_c1 hot -path /kv/hot/inc -c 1 -d "$DUR"
      measure "$s" "$r" hot_kv_c64 hot -path /kv/hot/inc -c 64 -d "$DUR"
      stop
    }
  fi
  if want cold; then
    start "$s" cold && {
      measure "$s" "$r" cold cold -n "$COLD_N" -c 16 -d 20s -prefix "c$r" -pid "$PID"
      stop
    }
    if [ "$s" = durable ]; then
      # The same with the open-database cap closing all but 64 databases.
      start durable cold-capped --max-open-databases 64 && {
        measure durable-capped "$r" cold cold -n "$COLD_N" -c 16 -d 20s -prefix "c$r" -pid "$PID"
        stop
      }
    fi
  fi
  if want ws; then
    start "$s" ws && {
      measure "$s" "$r" ws_echo ws -n "$WS_N" -d "$DUR" -room echo
      stop
    }
  fi
  if want bcast; then
    start "$s" bcast && {
      measure "$s" "$r" ws_broadcast bcast -n "$WS_N" -m 300 -d 15s -room b
      stop
    }
  fi
  if want idle; then
    start "$s" idle && {
      measure "$s" "$r" ws_idle wsidle -n "$IDLE_N" -hold 3s -room idle -pid "$PID"
      stop
    }
  fi
  if want alarm; then
    start "$s" alarm && {
      measure "$s" "$r" alarm alarm -n 200 -ms 100 -prefix "a$r" -wait 10s
      stop
    }
  fi
}

for r in $(seq 1 "$ROUNDS"); do
  # A B A B: the order alternates so neither server always runs first.
  order=$SERVERS
  if [ $((r % 2)) = 0 ]; then order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
  for s in $order; do one "$s" "$r"; done
done

# ------------------------------------------------------------------ report
"$LOAD" report -in "$OUT" -md "$WORK/report.md" -chart "$WORK/chart.svg" -title "durable vs workerd, $ROUNDS rounds" \
  2>>"$LOG" || { log "report failed"; exit 1; }
log "report: $WORK/report.md"
if [ "$WRITE_DOCS" = 1 ]; then
  cp "$OUT" "$ROOT/docs/bench/side-by-side.jsonl"
  cp "$WORK/machine.txt" "$ROOT/docs/bench/side-by-side-machine.txt"
  for f in "$WORK"/chart*.svg; do cp "$f" "$ROOT/docs/bench/side-by-side-$(basename "$f")"; done
  # The generated section sits between two marker lines of BENCHMARKS.md.
  {
    echo "Generated by \`bench/run.sh\` ($ROUNDS rounds). Machine and versions of this run:"
    echo
    sed 's/^/    /' "$WORK/machine.txt"
    echo
    cat "$WORK/report.md"
  } >"$WORK/section.md"
  awk -v f="$WORK/section.md" '
    $0 == "<!-- bench/run.sh: begin -->" { print; print ""; while ((getline l < f) > 0) print l; print ""; skip = 1; next }
    $0 == "<!-- bench/run.sh: end -->" { skip = 0 }
    !skip { print }' "$ROOT/docs/BENCHMARKS.md" >"$WORK/BENCHMARKS.md" &&
    grep -q "bench/run.sh: begin" "$WORK/BENCHMARKS.md" && grep -q "bench/run.sh: end" "$WORK/BENCHMARKS.md" &&
    cp "$WORK/BENCHMARKS.md" "$ROOT/docs/BENCHMARKS.md" || log "docs/BENCHMARKS.md not updated: its marker lines are missing"
  log "docs/BENCHMARKS.md, docs/bench/side-by-side* updated"
fi
cat "$WORK/report.md"
