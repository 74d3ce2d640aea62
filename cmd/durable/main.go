// Command durable runs durable objects.
//
//	durable serve [--dir ./data] [--addr 127.0.0.1:8787] [--app examples|bench]
//	              [--idle-timeout 70s] [--hibernate-after 10s]
//	              [--max-open-databases N] [--slow-turn 1s]
//	              [--log-format text|json] [--pprof-addr ADDR]
//	              [--admin-addr ADDR] [--admin-token TOKEN]
//	              [--otlp-endpoint URL] [--trace-sample F]
//
//	durable inspect --dir DIR [--json] namespaces|objects|object|keys|query ...
//
// serve hosts the example apps (DESIGN.md §5), or with --app bench the
// routes of the peer benchmark's worker, on an embedded runtime whose data
// lives in --dir; with --admin-addr, the admin API (/admin/v1) and the
// storage browser (/admin) on that separate address; with
// --otlp-endpoint, OpenTelemetry traces. SIGINT or SIGTERM drains
// in-flight requests, commits, and exits 0. inspect reads a stopped
// server's data directory (docs/OPERATIONS.md).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "inspect":
		os.Exit(inspect(os.Args[2:], os.Stdout))
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "durable: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: durable <command> [flags]

commands:
  serve    serve the example apps over HTTP (durable serve -h for flags)
  inspect  read a stopped server's data directory (durable inspect -h)
`)
}
