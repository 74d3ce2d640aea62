package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"golang.org/x/sys/unix"
)

// schemaVersion is the version of the runtime's internal tables, kept in
// PRAGMA user_version (which user SQL cannot read or set).
const schemaVersion = 1

// The runtime's internal tables. User SQL cannot touch anything named
// _durable_* (see authorize).
const schemaSQL = `
CREATE TABLE IF NOT EXISTS _durable_kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _durable_meta (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _durable_alarm (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL, retries INTEGER NOT NULL DEFAULT 0);
PRAGMA user_version = 1;
`

// journalSizeLimit bounds the WAL file left behind after a checkpoint.
const journalSizeLimit = 4 << 20

// dbConn is one open database: the SQLite connection and the runtime's
// prepared statements on it.
type dbConn struct {
	c    *sqlite3.Conn
	path string

	begin, commit, rollback      *sqlite3.Stmt
	savepoint, release           *sqlite3.Stmt // the turn's savepoint
	rollbackTo                   *sqlite3.Stmt
	opSavepoint, opRelease       *sqlite3.Stmt // one multi-step call (PutMany, Exec of several statements)
	opRollbackTo                 *sqlite3.Stmt
	kvGet, kvPut, kvDel          *sqlite3.Stmt
	alarmGet, alarmSet, alarmDel *sqlite3.Stmt
	metaGet, metaSet             *sqlite3.Stmt
	pageCount                    *sqlite3.Stmt
	txSavepoint, txRelease       *sqlite3.Stmt // Transaction (nests: the innermost of the name)
	txRollbackTo                 *sqlite3.Stmt
	pageSize                     int64

	list  map[listShape]*sqlite3.Stmt
	cache stmtCache // user statements by SQL text

	wal *walFile // the live WAL, found after the first commit
}

// open opens (creating if needed) the object's database. The caller is the
// owner; o.mu is taken here to publish the connection.
func (o *Object) open() error {
	if !o.statted {
		ok, err := o.st.fs.Access(o.path, vfs.ACCESS_EXISTS)
		if err != nil {
			return fmt.Errorf("store: %s/%s: %w", o.ns, o.id, err)
		}
		o.exists, o.statted = ok, true
	}
	created := !o.exists
	var dirs []string
	if created {
		var err error
		if dirs, err = mkdirs(filepath.Dir(o.path)); err != nil {
			return fmt.Errorf("store: create directory for %s/%s: %w", o.ns, o.id, err)
		}
	} else {
		// The file may have been made by a process that died before its
		// first sync: its directories' entries are synced once per process
		// before a write in them is acknowledged.
		dirs = o.st.unsyncedDirs(filepath.Dir(o.path))
	}
	if created {
		if err := o.st.writeTemplate(o.path); err != nil {
			return fmt.Errorf("store: create %s/%s: %w", o.ns, o.id, err)
		}
	}
	dc, err := openConn(o, created)
	if err != nil {
		if created {
			o.st.fs.Delete(o.path, false)
		}
		return fmt.Errorf("store: open %s/%s: %w", o.ns, o.id, err)
	}
	o.exists = true
	if o.interrupt != nil {
		dc.c.SetInterrupt(o.interrupt)
	}
	if created {
		o.createdNow = true
	}
	o.newDirs = dirs
	o.mu.Lock()
	o.conn = dc
	o.mu.Unlock()
	o.st.opened(o)
	return nil
}

// buildTemplate returns the bytes of a new object's database: WAL mode,
// the internal tables, user_version set, checkpointed. SQLite would
// otherwise build each new file with a journal-mode switch (a rollback
// journal and four syncs) and a schema transaction parsed anew: most of
// the cost of creating an object. It is built once per store, by SQLite
// itself, in a temporary directory under in (the data directory: it is
// writable, where TMPDIR may not be).
func buildTemplate(in string) ([]byte, error) {
	dir, err := os.MkdirTemp(in, ".template-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "template.sqlite")
	c, err := sqlite3.Open(path)
	if err != nil {
		return nil, err
	}
	for _, q := range []string{"PRAGMA journal_mode=WAL", "BEGIN;" + schemaSQL + "COMMIT;", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if err := c.Exec(q); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := c.Close(); err != nil { // the last connection folds the WAL in
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Bytes 18 and 19 of the header are 2 for a database in WAL mode.
	if len(b) < 100 || string(b[:16]) != "SQLite format 3\x00" || b[18] != 2 || b[19] != 2 {
		return nil, errors.New("the template is not a WAL-mode SQLite database")
	}
	return b, nil
}

// writeTemplate creates a new object's database file from the template,
// durably: it is written and synced before SQLite opens it (one sync
// instead of SQLite's four); the directory entry is synced by the
// coordinator before the object's first batch is acknowledged (newDirs).
func (st *Store) writeTemplate(path string) error {
	var err error
	if st.cfg.VFS == nil {
		err = writeFileSynced(path, st.template)
	} else {
		// A VFS given in Config (the power-loss simulation) sees the
		// write and the sync as SQLite's own would be seen.
		err = writeVFSFileSynced(st.fs, path, st.template)
	}
	if err != nil {
		st.fs.Delete(path, false)
	}
	return err
}

// writeFileSynced creates path holding b, atomically and durably: b goes
// to path+".new", is fdatasynced, and is renamed to path, so that after a
// crash path is either absent or complete (a torn new file would otherwise
// be a database SQLite cannot open). A ".new" file left by a crash is
// overwritten by the next attempt.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// writeVFSFileSynced is writeFileSynced through a VFS, which has no
// rename: the file is written in place, then synced.
func writeVFSFileSynced(fs vfs.VFS, path string, b []byte) error {
	f, _, err := fs.Open(path, vfs.OPEN_MAIN_DB|vfs.OPEN_CREATE|vfs.OPEN_EXCLUSIVE|vfs.OPEN_READWRITE)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Sync(vfs.SYNC_NORMAL | vfs.SYNC_DATAONLY)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirs creates dir and its missing parents and returns the directories
// whose entries changed and must be fsynced for a new file in dir to be
// durable: dir itself, and the parent of each directory created.
func mkdirs(dir string) ([]string, error) {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sync := []string{dir}
	for _, d := range created {
		sync = append(sync, filepath.Dir(d))
	}
	return sync, nil
}

func openConn(o *Object, created bool) (_ *dbConn, err error) {
	st := o.st
	u := url.URL{Scheme: "file", Path: o.path, RawQuery: "vfs=" + st.vfsName}
	c, err := sqlite3.OpenFlags(u.String(), sqlite3.OPEN_READWRITE|sqlite3.OPEN_CREATE|sqlite3.OPEN_URI|sqlite3.OPEN_NOMUTEX)
	if err != nil {
		return nil, err
	}
	dc := &dbConn{c: c, path: o.path}
	o.trusted = true
	defer func() {
		o.trusted = false
		if err != nil {
			dc.close()
		}
	}()
	// locking_mode=EXCLUSIVE first: the WAL index then lives in heap memory
	// (no -shm) and no other process can open the database. synchronous=
	// NORMAL: COMMIT writes the WAL without syncing it; the coordinator's
	// sync makes it durable (docs/ARCHITECTURE.md).
	for _, p := range []string{
		"PRAGMA locking_mode=EXCLUSIVE",
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=NORMAL",
		fmt.Sprintf("PRAGMA journal_size_limit=%d", journalSizeLimit),
		"PRAGMA foreign_keys=ON",
		"PRAGMA trusted_schema=OFF",
	} {
		if err := c.Exec(p); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	if mode, err := pragmaText(c, "PRAGMA journal_mode"); err != nil || mode != "wal" {
		return nil, fmt.Errorf("journal_mode is %q, not wal: %v", mode, err)
	}
	if _, err := c.Config(sqlite3.DBCONFIG_DEFENSIVE, true); err != nil {
		return nil, fmt.Errorf("defensive mode: %w", err)
	}
	pageSize, err := pragmaInt(c, "PRAGMA page_size")
	if err != nil {
		return nil, err
	}
	maxPages := st.cfg.MaxDatabaseSize / pageSize
	if err := c.Exec(fmt.Sprintf("PRAGMA max_page_count=%d", maxPages)); err != nil {
		return nil, err
	}
	setLimits(c)
	// The WAL hook replaces automatic checkpoints: the object checkpoints
	// after a commit that leaves the WAL long (Object.checkpoint), outside
	// the COMMIT.
	c.WALHook(func(_ *sqlite3.Conn, _ string, pages int) error {
		o.walPages = pages
		return nil
	})
	if err := c.SetAuthorizer(o.authorize); err != nil {
		return nil, err
	}
	version, err := pragmaInt(c, "PRAGMA user_version")
	if err != nil {
		return nil, err
	}
	if version < schemaVersion {
		if err := c.Exec("BEGIN;" + schemaSQL + "COMMIT;"); err != nil {
			return nil, fmt.Errorf("create internal tables: %w", err)
		}
	}
	if err := dc.prepare(o); err != nil {
		return nil, err
	}
	dc.pageSize = pageSize
	return dc, nil
}

func pragmaText(c *sqlite3.Conn, q string) (string, error) {
	s, _, err := c.Prepare(q)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if !s.Step() {
		return "", fmt.Errorf("%s: no row: %v", q, s.Err())
	}
	return s.ColumnText(0), nil
}

func pragmaInt(c *sqlite3.Conn, q string) (int64, error) {
	s, _, err := c.Prepare(q)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if !s.Step() {
		return 0, fmt.Errorf("%s: no row: %v", q, s.Err())
	}
	return s.ColumnInt64(0), nil
}

// The runtime's statements that are prepared on first use (an object that
// never uses KV or alarms never compiles them: opening stays cheap).
const (
	sqlOpSavepoint  = "SAVEPOINT _durable_op"
	sqlOpRelease    = "RELEASE _durable_op"
	sqlOpRollbackTo = "ROLLBACK TO _durable_op"
	sqlKVGet        = "SELECT value FROM _durable_kv WHERE key = ?"
	sqlKVPut        = "INSERT OR REPLACE INTO _durable_kv (key, value) VALUES (?, ?)"
	sqlKVDel        = "DELETE FROM _durable_kv WHERE key = ?"
	sqlAlarmGet     = "SELECT at_ms, retries FROM _durable_alarm WHERE id = 1"
	sqlAlarmSet     = "INSERT OR REPLACE INTO _durable_alarm (id, at_ms, retries) VALUES (1, ?, ?)"
	sqlAlarmDel     = "DELETE FROM _durable_alarm"
	sqlMetaGet      = "SELECT value FROM _durable_meta WHERE key = ?"
	sqlMetaSet      = "INSERT OR REPLACE INTO _durable_meta (key, value) VALUES (?, ?)"
	sqlPageCount    = "PRAGMA page_count"
	sqlTxSavepoint  = "SAVEPOINT _durable_tx"
	sqlTxRelease    = "RELEASE _durable_tx"
	sqlTxRollbackTo = "ROLLBACK TO _durable_tx"
)

// lazy returns the statement in slot, preparing sql into it on first use.
func (dc *dbConn) lazy(o *Object, slot **sqlite3.Stmt, sql string) (*sqlite3.Stmt, error) {
	if *slot != nil {
		return *slot, nil
	}
	o.trusted = true
	s, _, err := dc.c.PrepareFlags(sql, sqlite3.PREPARE_PERSISTENT)
	o.trusted = false
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", sql, err)
	}
	*slot = s
	return s, nil
}

// runLazy runs a lazily prepared statement to completion.
func (dc *dbConn) runLazy(o *Object, slot **sqlite3.Stmt, sql string) error {
	s, err := dc.lazy(o, slot, sql)
	if err != nil {
		return err
	}
	return dc.run(o, s)
}

// prepare compiles the statements every turn uses, once per connection.
func (dc *dbConn) prepare(o *Object) error {
	for _, p := range []struct {
		dst **sqlite3.Stmt
		sql string
	}{
		{&dc.begin, "BEGIN"},
		{&dc.commit, "COMMIT"},
		{&dc.rollback, "ROLLBACK"},
		{&dc.savepoint, "SAVEPOINT _durable_turn"},
		{&dc.release, "RELEASE _durable_turn"},
		{&dc.rollbackTo, "ROLLBACK TO _durable_turn"},
	} {
		s, _, err := dc.c.PrepareFlags(p.sql, sqlite3.PREPARE_PERSISTENT)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = s
	}
	return nil
}

// run executes one of the runtime's statements to completion. It is never
// interrupted: the interrupt that fences a stale instance stops its user
// statements, not the COMMIT or RELEASE of the turns around it.
func (dc *dbConn) run(o *Object, s *sqlite3.Stmt) error {
	o.trusted = true
	var prev context.Context
	if o.interrupt != nil {
		prev = dc.c.SetInterrupt(context.Background())
	}
	err := s.Exec()
	if prev != nil {
		dc.c.SetInterrupt(prev)
	}
	o.trusted = false
	return err
}

// wrote reports whether the open transaction holds writes.
func (dc *dbConn) wrote() bool {
	return dc.c.TxnState("main") == sqlite3.TXN_WRITE
}

// liveWAL returns the database's open WAL file (it exists once a commit
// has written to it).
func (dc *dbConn) liveWAL(o *Object) *walFile {
	if dc.wal == nil || dc.wal.isClosed() {
		dc.wal = o.st.fs.wal(dc.path + "-wal")
	}
	return dc.wal
}

// close finalizes every statement and closes the connection; SQLite
// checkpoints the WAL into the database file and removes it.
func (dc *dbConn) close() error {
	dc.cache.closeAll()
	for _, s := range dc.list {
		s.Close()
	}
	for _, s := range []*sqlite3.Stmt{
		dc.begin, dc.commit, dc.rollback, dc.savepoint, dc.release, dc.rollbackTo,
		dc.opSavepoint, dc.opRelease, dc.opRollbackTo, dc.kvGet, dc.kvPut, dc.kvDel,
		dc.alarmGet, dc.alarmSet, dc.alarmDel, dc.metaGet, dc.metaSet, dc.pageCount,
		dc.txSavepoint, dc.txRelease, dc.txRollbackTo,
	} {
		if s != nil {
			s.Close()
		}
	}
	// Any statement left (none should be) would make Close fail with BUSY
	// and keep the file locked.
	var left []*sqlite3.Stmt
	for s := range dc.c.Stmts() {
		left = append(left, s)
	}
	for _, s := range left {
		s.Close()
	}
	return dc.c.Close()
}

// checkpoint copies the WAL into the database file (PASSIVE: nothing else
// uses the file) so the WAL restarts small. Under synchronous=NORMAL it
// syncs the WAL before copying and the database after.
func (o *Object) checkpoint() {
	o.trusted = true
	_, _, err := o.conn.c.WALCheckpoint("main", sqlite3.CHECKPOINT_PASSIVE)
	o.trusted = false
	if err != nil {
		o.st.log.Warn("store: checkpoint", "namespace", o.ns, "id", o.id, "err", err)
		return
	}
	o.walPages = 0
}

// removeFiles closes the connection and deletes a database that was
// created by a read-only visit.
func (o *Object) removeFiles() {
	o.mu.Lock()
	o.closeConnLocked()
	o.mu.Unlock()
	for _, p := range []string{o.path, o.path + "-wal"} {
		if ok, _ := o.st.fs.Access(p, vfs.ACCESS_EXISTS); !ok {
			continue
		}
		if err := o.st.fs.Delete(p, false); err != nil {
			o.st.log.Warn("store: remove unused database", "path", p, "err", err)
		}
	}
	o.exists = false
	o.createdNow = false
	o.newDirs = nil
}
