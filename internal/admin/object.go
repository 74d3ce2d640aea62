package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/durable-go/durable/internal/store"
)

// ObjectDetail is one object as its own turn sees it: the listing's fields,
// its alarm from its own record, and its schema.
type ObjectDetail struct {
	ObjectInfo
	Paused       bool          `json:"paused"`
	AlarmRetries int           `json:"alarm_retries,omitempty"`
	Schema       []SchemaEntry `json:"schema"`
}

// SchemaEntry is one table, view, index or trigger the application
// created (the runtime's own tables are left out), with the row count of
// each table.
type SchemaEntry struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Table string `json:"table"`
	SQL   string `json:"sql"`
	Rows  *int64 `json:"rows,omitempty"` // tables only, counted up to MaxRowCount
	// RowsCapped says the table has more than MaxRowCount rows (Rows is
	// then MaxRowCount): counting stops there so that an object's page
	// costs the same for a huge table.
	RowsCapped bool `json:"rows_capped,omitempty"`
}

// MaxRowCount is where the schema's row counts stop.
const MaxRowCount = 100000

// ReadObject fills d's alarm and schema from the object's storage, in one
// of its turns: the read-only query path, so it is refused nothing an
// operator's query is not and writes nothing.
func ReadObject(ctx context.Context, o *store.Object, d *ObjectDetail) error {
	at, retries, ok, err := o.AlarmRecord()
	if err != nil {
		return err
	}
	d.AlarmMs, d.AlarmRetries = 0, 0
	if ok {
		d.AlarmMs, d.AlarmRetries = at, retries
	}
	_, rows, _, err := o.QueryReadOnly(ctx, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema
		WHERE name NOT LIKE '\_durable\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
		ORDER BY tbl_name, type = 'table' DESC, name`, MaxQueryRows)
	if err != nil {
		return err
	}
	d.Schema = make([]SchemaEntry, 0, len(rows))
	for _, r := range rows {
		e := SchemaEntry{Type: str(r[0]), Name: str(r[1]), Table: str(r[2]), SQL: str(r[3])}
		if e.Type == "table" {
			_, n, _, err := o.QueryReadOnly(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d)",
				QuoteIdent(e.Name), MaxRowCount+1), 1)
			if err != nil {
				return err
			}
			if len(n) == 1 {
				if v, ok := n[0][0].(int64); ok {
					if v > MaxRowCount {
						v, e.RowsCapped = MaxRowCount, true
					}
					e.Rows = &v
				}
			}
		}
		d.Schema = append(d.Schema, e)
	}
	return nil
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return ""
}
