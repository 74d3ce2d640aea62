package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ncruces/go-sqlite3"
)

// internalPrefix marks the runtime's own tables; user SQL cannot touch them.
const internalPrefix = "_durable_"

// ErrTransactionSQL is returned for BEGIN, COMMIT, ROLLBACK, SAVEPOINT and
// RELEASE in user SQL.
var ErrTransactionSQL = errors.New("store: transaction statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) are not allowed in SQL; every turn is already a transaction, use Storage.Transaction for a smaller atomic unit")

var errTemp = errors.New("store: TEMP tables, views, indexes and triggers are not allowed: they would not be durable")

// Pragmas user SQL may run. Read-only ones may take an argument (a table
// name, a row count); settable ones may be set.
var (
	readPragmas = map[string]bool{
		"table_info": true, "table_xinfo": true, "table_list": true,
		"index_list": true, "index_info": true, "index_xinfo": true,
		"foreign_key_list": true, "quick_check": true, "integrity_check": true,
	}
	setPragmas = map[string]bool{
		"foreign_keys": true, "defer_foreign_keys": true, "optimize": true,
	}
)

func isInternal(name string) bool {
	return len(name) >= len(internalPrefix) && strings.EqualFold(name[:len(internalPrefix)], internalPrefix)
}

// authorize is the SQLite authorizer of every connection. The runtime's
// own statements run with o.trusted set; user statements are checked, and
// a refusal records its reason for sqlError.
//
// SQLite authorizes a view's query and a trigger's body where they are
// used, not where they are created: a view or trigger that touches an
// internal table can be created but every statement that would run it is
// refused.
func (o *Object) authorize(action sqlite3.AuthorizerActionCode, a3, a4, schema, inner string) sqlite3.AuthorizerReturnCode {
	if o.trusted {
		return sqlite3.AUTH_OK
	}
	if action == sqlite3.AUTH_ANALYZE && isInternal(a3) {
		return sqlite3.AUTH_IGNORE // a plain ANALYZE skips the internal tables
	}
	if o.readOnlyQuery && writes(action, a3, a4) {
		o.authErr = ErrWouldWrite // it would change the connection or the database
		return sqlite3.AUTH_DENY
	}
	if err := checkAction(action, a3, a4, schema); err != nil {
		o.authErr = err
		return sqlite3.AUTH_DENY
	}
	return sqlite3.AUTH_OK
}

// writes says whether an action changes the database or the connection:
// refused in a read-only query, whether it is the query's own or one a
// table-valued function (pragma_optimize) prepares while the query runs.
func writes(action sqlite3.AuthorizerActionCode, a3, a4 string) bool {
	switch action {
	case sqlite3.AUTH_SELECT, sqlite3.AUTH_READ, sqlite3.AUTH_FUNCTION, sqlite3.AUTH_RECURSIVE:
		return false
	case sqlite3.AUTH_PRAGMA:
		return (a4 != "" || strings.EqualFold(a3, "optimize")) && settingPragmas[strings.ToLower(a3)]
	}
	return true // insert, update, delete, create, drop, alter, analyze, reindex, attach, transactions
}

// settingPragmas are the allowed pragmas that change something when given
// a value (or, for optimize, at all): refused in a read-only query.
var settingPragmas = map[string]bool{"foreign_keys": true, "defer_foreign_keys": true, "optimize": true}

func checkAction(action sqlite3.AuthorizerActionCode, a3, a4, schema string) error {
	internal := func(name string) error {
		if isInternal(name) {
			return fmt.Errorf("store: table %q is internal to durable and cannot be used from SQL (names starting with %q are reserved)", name, internalPrefix)
		}
		return nil
	}
	switch action {
	case sqlite3.AUTH_ATTACH, sqlite3.AUTH_DETACH:
	default:
		if strings.EqualFold(schema, "temp") {
			return errTemp
		}
		if schema != "" && schema != "main" {
			return fmt.Errorf("store: database %q is not allowed: use the object's main database", schema)
		}
	}
	switch action {
	case sqlite3.AUTH_TRANSACTION, sqlite3.AUTH_SAVEPOINT:
		return ErrTransactionSQL
	case sqlite3.AUTH_ATTACH, sqlite3.AUTH_DETACH:
		return errors.New("store: ATTACH and DETACH are not allowed: each object has exactly one database")
	case sqlite3.AUTH_CREATE_TEMP_INDEX, sqlite3.AUTH_CREATE_TEMP_TABLE, sqlite3.AUTH_CREATE_TEMP_TRIGGER,
		sqlite3.AUTH_CREATE_TEMP_VIEW, sqlite3.AUTH_DROP_TEMP_INDEX, sqlite3.AUTH_DROP_TEMP_TABLE,
		sqlite3.AUTH_DROP_TEMP_TRIGGER, sqlite3.AUTH_DROP_TEMP_VIEW:
		return errTemp
	case sqlite3.AUTH_PRAGMA:
		name := strings.ToLower(a3)
		switch {
		case readPragmas[name]:
			if err := internal(a4); err != nil {
				return err
			}
			return nil
		case setPragmas[name]:
			return nil
		}
		return fmt.Errorf("store: PRAGMA %s is not allowed (allowed: table_info, table_xinfo, table_list, index_list, index_info, index_xinfo, foreign_key_list, quick_check, integrity_check, foreign_keys, defer_foreign_keys, optimize)", a3)
	case sqlite3.AUTH_CREATE_TABLE, sqlite3.AUTH_DROP_TABLE, sqlite3.AUTH_CREATE_VIEW, sqlite3.AUTH_DROP_VIEW,
		sqlite3.AUTH_INSERT, sqlite3.AUTH_DELETE, sqlite3.AUTH_READ, sqlite3.AUTH_UPDATE, sqlite3.AUTH_ANALYZE,
		sqlite3.AUTH_REINDEX, sqlite3.AUTH_CREATE_VTABLE, sqlite3.AUTH_DROP_VTABLE:
		return internal(a3)
	case sqlite3.AUTH_CREATE_INDEX, sqlite3.AUTH_DROP_INDEX, sqlite3.AUTH_CREATE_TRIGGER, sqlite3.AUTH_DROP_TRIGGER:
		if err := internal(a3); err != nil {
			return err
		}
		return internal(a4)
	case sqlite3.AUTH_ALTER_TABLE:
		return internal(a4)
	}
	return nil
}
