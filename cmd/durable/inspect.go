package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/durable-go/durable/internal/admin"
	usagebook "github.com/durable-go/durable/internal/usage"
)

const inspectUsage = `usage: durable inspect --dir DIR [--json] COMMAND

Reads the data directory of a stopped server (a directory a running server
holds is refused: use its admin API then).

commands:
  namespaces                         the namespaces with stored objects
  objects NS [--limit N] [--cursor C] a namespace's objects in ID order (1,000 a page)
  object NS ID                        an object's alarm and schema (tables with row counts)
  keys NS ID [--prefix P] [--limit N]  an object's KV keys
  query NS ID 'SELECT ...'            one read-only SQL statement (1,000 rows, 5 s at most)
  usage NS ID                         what an object used (as of the server's last flush)
  top BY [NS] [--limit N]             the top users by requests, wall, rows_read, rows_written or bytes
`

// inspect runs `durable inspect` with its output on out.
func inspect(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, inspectUsage) }
	dir := fs.String("dir", "./data", "data directory")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", admin.DefaultPageSize, "page size (10 to 10,000)")
	cursor := fs.String("cursor", "", "continue after this ID or key")
	prefix := fs.String("prefix", "", "keys: only those with this prefix")
	if err := fs.Parse(reorder(args)); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	if *limit < admin.MinPageSize || *limit > admin.MaxPageSize {
		fmt.Fprintln(os.Stderr, "durable inspect: --limit must be from 10 to 10000")
		return 2
	}
	want := map[string]int{"namespaces": 1, "objects": 2, "object": 3, "keys": 3, "query": 4, "usage": 3, "top": 2}
	if n, ok := want[rest[0]]; !ok || (len(rest) != n && !(rest[0] == "top" && len(rest) == 3)) {
		fmt.Fprintf(os.Stderr, "durable inspect: %q: wrong command or arguments\n", strings.Join(rest, " "))
		fs.Usage()
		return 2
	}
	in, err := admin.OpenInspector(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "durable inspect:", err)
		return 1
	}
	defer in.Close()
	var v any
	switch rest[0] {
	case "namespaces":
		v, err = in.Namespaces()
	case "objects":
		var objs []admin.ObjectInfo
		var more bool
		objs, more, err = in.Objects(rest[1], *cursor, *limit)
		next := ""
		if more && len(objs) > 0 {
			next = objs[len(objs)-1].ID
		}
		v = map[string]any{"objects": objs, "cursor": next}
	case "object":
		v, err = in.Object(rest[1], rest[2])
	case "keys":
		var keys []admin.KeyInfo
		keys, err = in.Keys(rest[1], rest[2], *prefix, *cursor, *limit)
		next := ""
		if len(keys) == *limit {
			next = keys[len(keys)-1].Key
		}
		if keys == nil {
			keys = []admin.KeyInfo{}
		}
		v = keyPage{Keys: keys, Cursor: next}
	case "query":
		v, err = in.Query(rest[1], rest[2], rest[3])
	case "usage":
		v, err = in.Usage(rest[1], rest[2])
	case "top":
		ns := ""
		if len(rest) == 3 {
			ns = rest[2]
		}
		var top []usagebook.Totals
		n := 10
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "limit" {
				n = min(*limit, 1000)
			}
		})
		top, err = in.TopUsage(ns, rest[1], n)
		if top == nil {
			top = []usagebook.Totals{}
		}
		v = top
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "durable inspect:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return 0
	}
	printText(out, v)
	return 0
}

// keyPage is one page of an object's KV keys, as the admin API's.
type keyPage struct {
	Keys   []admin.KeyInfo `json:"keys"`
	Cursor string          `json:"cursor"` // "" on the last page
}

// reorder moves flags after the positional arguments to the front, so
// that `objects NS --limit 10` parses as well as `--limit 10 objects NS`.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--json" || a == "-json":
			flags = append(flags, a)
		case strings.HasPrefix(a, "-") && !strings.Contains(a, "=") && i+1 < len(args):
			flags = append(flags, a, args[i+1])
			i++
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

// printText prints a result as aligned text.
func printText(out io.Writer, v any) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	defer tw.Flush()
	switch v := v.(type) {
	case []string:
		for _, s := range v {
			fmt.Fprintln(tw, s)
		}
	case map[string]any:
		fmt.Fprintln(tw, "ID\tBYTES\tALARM")
		for _, o := range v["objects"].([]admin.ObjectInfo) {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", o.ID, o.Bytes, alarmText(o.AlarmMs))
		}
		if c := v["cursor"].(string); c != "" {
			fmt.Fprintf(tw, "(more: --cursor %s)\n", c)
		}
	case usagebook.Totals:
		printUsage(tw, []usagebook.Totals{v})
	case []usagebook.Totals:
		printUsage(tw, v)
	case admin.ObjectDetail:
		fmt.Fprintf(tw, "id\t%s\nbytes\t%d\nalarm\t%s\n", v.ID, v.Bytes, alarmText(v.AlarmMs))
		if v.AlarmRetries > 0 {
			fmt.Fprintf(tw, "alarm retries\t%d\n", v.AlarmRetries)
		}
		fmt.Fprintln(tw, "\nTYPE\tNAME\tTABLE\tROWS\tSQL")
		for _, e := range v.Schema {
			rows := ""
			if e.Rows != nil {
				rows = fmt.Sprint(*e.Rows)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Type, e.Name, e.Table, rows, strings.Join(strings.Fields(e.SQL), " "))
		}
	case keyPage:
		fmt.Fprintln(tw, "KEY\tBYTES")
		for _, k := range v.Keys {
			fmt.Fprintf(tw, "%q\t%d\n", k.Key, k.Bytes)
		}
		if v.Cursor != "" {
			fmt.Fprintf(tw, "(more: --cursor %q)\n", v.Cursor)
		}
	case admin.QueryResult:
		fmt.Fprintln(tw, strings.Join(v.Columns, "\t"))
		for _, row := range v.Rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = fmt.Sprint(c)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if v.Truncated {
			fmt.Fprintf(tw, "(more than %d rows)\n", admin.MaxQueryRows)
		}
	}
}

// alarmText shows an alarm time (Unix ms; 0 is none) in UTC.
func alarmText(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// printUsage prints usage totals as a table.
func printUsage(tw io.Writer, ts []usagebook.Totals) {
	fmt.Fprintln(tw, "NAMESPACE\tID\tREQUESTS\tWALL\tROWS READ\tROWS WRITTEN\tBYTES")
	for _, u := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%d\t%d\t%d\n", u.NS, u.ID, u.Requests, time.Duration(u.WallNanos), u.RowsRead, u.RowsWritten, u.Bytes)
	}
}
