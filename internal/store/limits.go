package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/durable-go/durable/internal/errs"
	"github.com/ncruces/go-sqlite3"
)

// Limits (DESIGN.md §2). Sizes: 1 MiB = 1,048,576 bytes.
const (
	MaxKeyBytes        = 2048      // a KV key
	MaxEntryBytes      = 2 << 20   // a KV key plus its encoded value (format tag not counted)
	MaxKeysPerCall     = 128       // keys in one multi-key KV call
	MaxSQLBytes        = 100_000   // one SQL statement (the whole Exec text)
	MaxBoundParameters = 100       // bound parameters in one user statement
	MaxColumns         = 100       // columns in a table (and in a result)
	MaxValueBytes      = 2_200_000 // a SQL string, BLOB or row
)

// setLimits applies the limits SQLite can enforce itself. The bound
// parameter limit is checked per user statement instead (checkParams), so
// the runtime's own batched statements are not held to it.
func setLimits(c *sqlite3.Conn) {
	c.Limit(sqlite3.LIMIT_LENGTH, MaxValueBytes)
	c.Limit(sqlite3.LIMIT_SQL_LENGTH, MaxSQLBytes)
	c.Limit(sqlite3.LIMIT_COLUMN, MaxColumns)
	c.Limit(sqlite3.LIMIT_ATTACHED, 0)
}

// limitError returns an error wrapping ErrLimit that names the limit.
func limitError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errs.ErrLimit, fmt.Sprintf(format, a...))
}

// sqlError turns an SQLite error of a user statement into the error the
// user sees: the authorizer's reason for a refusal, ErrLimit naming the
// limit for a limit, the SQLite message otherwise.
func (o *Object) sqlError(err error) error {
	if err == nil {
		return nil
	}
	out := o.classify(err)
	o.checkRolledBack(out)
	return out
}

// checkRolledBack handles an error after which SQLite rolled back the whole
// batch transaction by itself (it may, for SQLITE_FULL, IOERR, NOMEM): every
// turn of the batch lost its writes, so the batch's promise fails and the
// current turn fails with cause. A full database is the user's limit; any
// other cause is a storage failure and resets the object.
func (o *Object) checkRolledBack(cause error) {
	if !o.txnOpen || o.conn == nil || !o.conn.c.GetAutocommit() {
		return
	}
	if !errors.Is(cause, errs.ErrLimit) {
		o.fatal(o.batch, cause)
		return
	}
	o.st.log.Warn("store: SQLite rolled back the batch after an error; its turns fail", "namespace", o.ns, "id", o.id, "err", cause)
	if o.batch != nil {
		o.batch.Resolve(fmt.Errorf("store: %s/%s: the batch was rolled back after an error in a later turn (%v): %w", o.ns, o.id, cause, errs.ErrObjectReset))
	}
	o.txnOpen, o.spOpen = false, false
	if o.inTurn {
		o.turnFailed = cause
	}
}

func (o *Object) classify(err error) error {
	if o.authErr != nil {
		a := o.authErr
		o.authErr = nil
		if errors.Is(err, sqlite3.AUTH) {
			return a
		}
	}
	msg := err.Error()
	switch {
	case errors.Is(err, sqlite3.TOOBIG) && strings.Contains(msg, "statement too long"):
		return limitError("SQL statement length limit (%d bytes)", MaxSQLBytes)
	case errors.Is(err, sqlite3.TOOBIG):
		return limitError("SQL string, BLOB or row size limit (%d bytes)", MaxValueBytes)
	case strings.Contains(msg, "too many columns"):
		return limitError("column limit (%d columns per table or result): %s", MaxColumns, msg)
	case errors.Is(err, sqlite3.FULL):
		return limitError("database size limit (%d bytes) or disk full: %s", o.st.cfg.MaxDatabaseSize, msg)
	case errors.Is(err, sqlite3.INTERRUPT):
		return fmt.Errorf("store: statement interrupted: %w", errs.ErrObjectReset)
	}
	return fmt.Errorf("store: %s", msg)
}
