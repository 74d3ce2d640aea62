// Command load drives the comparison of durable with Cloudflare's workerd.
//
// Both servers serve the same routes (counters, key-value counters, WebSocket
// rooms, alarms; see /work/shared/peers/workerd/worker.js and the bench app of
// `durable serve --app bench`). Each load subcommand runs one bounded
// measurement against one server on the loopback interface and prints exactly
// one JSON line on stdout:
//
//	{"scenario":"hot_counter_c64","server":"durable","round":1,"time":"…","metrics":{"rps":…}}
//
// Diagnostics go to stderr. The report subcommand reads many such lines (one
// file for every server, scenario and round) and writes a markdown report and
// an SVG chart.
//
// Two dependencies, each for one job: github.com/gobwas/ws dials client
// WebSockets that cost no goroutine and no buffer while idle (thousands of
// them share two cores with the server), and gonum.org/v1/plot draws the
// chart as SVG, which diffs as text.
package main

import (
	"fmt"
	"io"
	"os"
)

// A command is one subcommand: its name, a one-line summary for the usage
// text and the function that parses its flags and runs it.
type command struct {
	name    string
	args    string
	summary string
	run     func(args []string) int
}

var commands = []command{
	{"hot", "-path /counter/hot/inc -c 64 -d 10s [-method POST]", "closed loop of c keep-alive connections on one path", runHot},
	{"cold", "-n 10000 -c 16 -d 20s -prefix P [-pid PID]", "one POST /counter/<P>-<i>/inc to each of n new objects", runCold},
	{"ws", "-n 1000 -d 10s -room R", "n echo sockets in one room, each closed-loop", runEcho},
	{"bcast", "-n 1000 -m 300 -d 15s -room R", "one sender fans out to n broadcast sockets, waits for all", runBroadcast},
	{"wsidle", "-n 9000 -hold 3s -room R -pid PID", "memory and fds of the server holding n idle sockets", runIdle},
	{"alarm", "-n 200 -ms 50 -prefix P [-wait 5s]", "set n alarms, poll until they fired, report lateness", runAlarm},
	{"rss", "-pid PID", "resident memory and open fds of a process", runRSS},
	{"report", "-in results.jsonl -md OUT.md -chart OUT.svg [-title T]", "markdown tables, targets and chart from result lines", runReport},
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stderr))
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(stderr, "load: unknown subcommand %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: load <subcommand> [flags]

Load subcommands measure one server on the loopback interface and print one
JSON line {"scenario","server","round","time","metrics"} on stdout. They all take
  -url http://127.0.0.1:PORT  base URL (loopback only)
  -server NAME                durable, workerd, durable-capped, ...
  -round N                    round number of the harness
  -scenario LABEL             scenario label (defaults to the subcommand name)
  -timeout D                  hard overall deadline (default: the run's duration
                              plus a generous margin); on overrun the line still
                              comes out, with metric "incomplete": 1

Subcommands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n          %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprint(w, `
report writes one SVG with two panels: throughput (log scale) on top and
latency p50/p99 (log scale) below; bars are medians over rounds, whiskers span
min to max.

Run "load <subcommand> -h" for the flags of one subcommand.
`)
}
