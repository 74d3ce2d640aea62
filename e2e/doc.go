// Package e2e holds black-box tests of the built durable binary
// (DESIGN.md §3). The tests build cmd/durable once per run with the go
// command from PATH, start it as
//
//	durable serve --dir <dir> --addr 127.0.0.1:0
//
// learn its address from the "listening on <addr>" line it prints on
// stdout, and talk to it over HTTP and WebSockets on 127.0.0.1 only. They stop it with
// SIGTERM (it must exit 0) or kill it with SIGKILL and restart it on the
// same data directory, then check what survived:
//
//   - TestServe_Routes: the counter routes and the status codes of
//     DESIGN.md §5, /healthz, /_durable/stats, and a graceful restart.
//   - TestServe_DirLocked: a second server on a held data directory is
//     refused.
//   - TestServe_KillUnderLoad: SIGKILL under concurrent increments, cycle
//     after cycle on one data directory; every acknowledged increment
//     survives and nothing is counted that was never sent.
//   - TestCheckKillCycle_NegativeControl: the kill test's check, fed faults
//     through a stub server, reports each of them.
//   - TestServe_Chat, TestServe_RateLimit, TestServe_Seats: the example
//     apps' routes (broadcast, history, 1009/1003 closes, hibernation seen
//     in /_durable/stats, 20 concurrent bookings of a seat, pushes, data
//     across a restart, 1001 on SIGTERM).
//   - TestServe_SigtermDrainsInFlight: a half-sent request is served after
//     SIGTERM and is durable; other requests get a status or a refused
//     connection.
//   - TestServe_ChatKillKeepsWhatWasDelivered: SIGKILL while a chat member
//     sends; every message another member received is stored.
//
// bench_test.go holds issue 5's WebSocket benchmarks (memory per
// hibernated socket, broadcast, wake-up latency); they run only with
// -bench.
//
// Every step is bounded in time; timing decides pass or fail only through
// generous liveness deadlines. No child process outlives its test: each is
// killed on cleanup, and on Linux also by the kernel if the test process
// dies first.
//
// A SIGKILL leaves the server's write(2)s in the kernel's page cache, so
// the kill test proves that an increment is committed before it is
// acknowledged and that recovery keeps it; it cannot tell a synced commit
// from an unsynced one (internal/store's power-loss tests do that).
//
// The kill test runs 5 cycles by default (with -short too); run it longer
// with -e2e.cycles=N or DURABLE_E2E_CYCLES=N.
package e2e
