package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

func mustOpen(t *testing.T, fs *FS, name string, flags vfs.OpenFlag) *file {
	t.Helper()
	f, _, err := fs.Open(name, flags)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return f.(*file)
}

func mustWrite(t *testing.T, f vfs.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatalf("write at %d: %v", off, err)
	}
}

func readAll(t *testing.T, fs *FS, name string) []byte {
	t.Helper()
	f := mustOpen(t, fs, name, vfs.OPEN_READWRITE)
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && size > 0 {
		t.Fatal(err)
	}
	return b
}

const rw = vfs.OPEN_READWRITE | vfs.OPEN_CREATE | vfs.OPEN_MAIN_DB

// Synced bytes always survive; each sector piece of an unsynced write is
// either the old or the new bytes, never anything else; across seeds both
// happen.
func TestFS_CutKeepsSyncedAndTearsUnsynced(t *testing.T) {
	old := bytes.Repeat([]byte{'a'}, 4*SectorSize)
	upd := bytes.Repeat([]byte{'b'}, 3*SectorSize) // covers sectors 0-3 in part, at offset 256
	var kept, dropped int64
	for seed := range uint64(64) {
		fs := New()
		f := mustOpen(t, fs, "/db", rw)
		mustWrite(t, f, old, 0)
		if err := fs.Syncer().SyncFile(f); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, upd, 256)
		cs := fs.Cut(rand.New(rand.NewPCG(seed, 1)))
		if cs.UnsyncedSectors != 4 || cs.Files != 1 {
			t.Fatalf("cut stats %+v: want 4 unsynced sector pieces in 1 file", cs)
		}
		kept += cs.UnsyncedSectors - cs.DroppedSectors
		dropped += cs.DroppedSectors
		fs.Restart()
		got := readAll(t, fs, "/db")
		if len(got) != len(old) {
			t.Fatalf("size %d, want %d (the write did not extend the file)", len(got), len(old))
		}
		for s := 0; s < 4; s++ {
			lo, hi := max(s*SectorSize, 256), min((s+1)*SectorSize, 256+len(upd))
			piece := got[lo:hi]
			if !bytes.Equal(piece, old[lo:hi]) && !bytes.Equal(piece, upd[:hi-lo]) {
				t.Fatalf("seed %d sector %d: mixed bytes %q", seed, s, piece)
			}
			if !bytes.Equal(got[s*SectorSize:lo], old[s*SectorSize:lo]) || !bytes.Equal(got[hi:], old[hi:]) && s == 3 {
				t.Fatalf("seed %d: bytes outside the write changed", seed)
			}
		}
	}
	if kept == 0 || dropped == 0 {
		t.Fatalf("kept %d, dropped %d sector pieces over 64 seeds: want both", kept, dropped)
	}
}

func TestFS_SyncMakesEverythingDurable(t *testing.T) {
	fs := New()
	f := mustOpen(t, fs, "/db", rw)
	g := mustOpen(t, fs, "/db", vfs.OPEN_READWRITE)
	mustWrite(t, f, []byte("hello, world"), 0)
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, []byte("!"), 5000)
	if err := g.Sync(vfs.SYNC_NORMAL); err != nil { // another handle of the same file
		t.Fatal(err)
	}
	want := readAll(t, fs, "/db")
	if durable, ok := fs.Durable("/db"); !ok || !bytes.Equal(durable, want) {
		t.Fatalf("durable image %q..., want the current bytes after a sync", durable[:8])
	}
	mustWrite(t, f, []byte("lost?"), 0) // unsynced: may or may not survive
	if fs.Unsynced() != 1 {
		t.Fatalf("Unsynced = %d, want 1", fs.Unsynced())
	}
	fs.Cut(rand.New(rand.NewPCG(1, 2)))
	fs.Restart()
	got := readAll(t, fs, "/db")
	if len(got) != 5001 || !bytes.Equal(got[5:], want[5:]) || !bytes.Equal(got[:5], want[:5]) && string(got[:5]) != "lost?" {
		t.Fatalf("after cut: %q..., want the synced image", got[:8])
	}
	if st := fs.Stats(); st.Cuts != 1 || st.Syncs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFS_UnsyncedTruncateMayApply(t *testing.T) {
	var applied, droppedN int
	for seed := range uint64(32) {
		fs := New()
		f := mustOpen(t, fs, "/wal", rw)
		mustWrite(t, f, make([]byte, 1000), 0)
		f.Sync(0)
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		cs := fs.Cut(rand.New(rand.NewPCG(seed, 3)))
		fs.Restart()
		switch n := len(readAll(t, fs, "/wal")); {
		case n == 0 && cs.DroppedTruncates == 0:
			applied++
		case n == 1000 && cs.DroppedTruncates == 1:
			droppedN++
		default:
			t.Fatalf("size %d after cut %+v", n, cs)
		}
	}
	if applied == 0 || droppedN == 0 {
		t.Fatalf("truncate applied %d times, dropped %d: want both", applied, droppedN)
	}
}

func TestFS_CutKillsHandlesAndPowersOff(t *testing.T) {
	fs := New()
	f := mustOpen(t, fs, "/db", rw)
	mustWrite(t, f, []byte("x"), 0)
	if err := f.Lock(vfs.LOCK_SHARED); err != nil {
		t.Fatal(err)
	}
	if err := f.Lock(vfs.LOCK_EXCLUSIVE); err != nil {
		t.Fatal(err)
	}
	s := fs.Syncer()
	fs.Cut(rand.New(rand.NewPCG(1, 1)))

	buf := make([]byte, 1)
	checks := map[string]error{
		"sync file":   s.SyncFile(f),
		"sync volume": s.SyncVolume(),
		"sync dir":    s.SyncDir("/"),
		"sync":        f.Sync(0),
		"truncate":    f.Truncate(0),
	}
	_, checks["read"] = f.ReadAt(buf, 0)
	_, checks["write"] = f.WriteAt(buf, 0)
	_, checks["size"] = f.Size()
	_, checks["check reserved"] = f.CheckReservedLock()
	_, _, checks["open"] = fs.Open("/db", rw)
	_, checks["access"] = fs.Access("/db", vfs.ACCESS_EXISTS)
	checks["delete"] = fs.Delete("/db", false)
	for op, err := range checks {
		if !errors.Is(err, ErrPowerCut) {
			t.Errorf("%s after cut: %v, want ErrPowerCut", op, err)
		}
	}
	if err := f.Unlock(vfs.LOCK_NONE); err != nil {
		t.Errorf("unlock of a dead handle: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close of a dead handle: %v", err)
	}

	fs.Restart()
	if err := s.SyncVolume(); !errors.Is(err, ErrPowerCut) {
		t.Errorf("old syncer after restart: %v", err)
	}
	// The dead handle's exclusive lock is gone with it.
	g := mustOpen(t, fs, "/db", vfs.OPEN_READWRITE)
	if err := g.Lock(vfs.LOCK_SHARED); err != nil {
		t.Fatal(err)
	}
	if err := g.Lock(vfs.LOCK_EXCLUSIVE); err != nil {
		t.Fatalf("exclusive lock after restart: %v", err)
	}
	if err := fs.Syncer().SyncFile(g); err != nil {
		t.Fatal(err)
	}
}

func TestFS_Locks(t *testing.T) {
	fs := New()
	a := mustOpen(t, fs, "/db", rw)
	b := mustOpen(t, fs, "/db", vfs.OPEN_READWRITE)
	step := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	step("a shared", a.Lock(vfs.LOCK_SHARED), nil)
	step("b shared", b.Lock(vfs.LOCK_SHARED), nil)
	step("a reserved", a.Lock(vfs.LOCK_RESERVED), nil)
	step("b reserved", b.Lock(vfs.LOCK_RESERVED), sqlite3.BUSY)
	if ok, _ := b.CheckReservedLock(); !ok {
		t.Fatal("b does not see a's reserved lock")
	}
	step("a exclusive while b reads", a.Lock(vfs.LOCK_EXCLUSIVE), sqlite3.BUSY)
	if a.LockState() != vfs.LOCK_PENDING {
		t.Fatalf("a holds %v, want PENDING", a.LockState())
	}
	step("b unlock", b.Unlock(vfs.LOCK_NONE), nil)
	step("b shared while a is pending", b.Lock(vfs.LOCK_SHARED), sqlite3.BUSY)
	step("a exclusive", a.Lock(vfs.LOCK_EXCLUSIVE), nil)
	step("a unlock to shared", a.Unlock(vfs.LOCK_SHARED), nil)
	step("b shared", b.Lock(vfs.LOCK_SHARED), nil)
	step("b reserved", b.Lock(vfs.LOCK_RESERVED), nil)
	step("a close", a.Close(), nil)
	step("b exclusive", b.Lock(vfs.LOCK_EXCLUSIVE), nil)
}

func TestFS_DeleteAndTempFiles(t *testing.T) {
	fs := New()
	f := mustOpen(t, fs, "/db-wal", rw|vfs.OPEN_WAL)
	mustWrite(t, f, []byte("frames"), 0)
	if err := fs.Delete("/db-wal", true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := fs.Access("/db-wal", vfs.ACCESS_EXISTS); ok {
		t.Fatal("deleted file exists")
	}
	if moved, _ := f.HasMoved(); !moved {
		t.Fatal("HasMoved is false for a deleted file")
	}
	if _, err := f.ReadAt(make([]byte, 6), 0); err != nil { // an open handle keeps the data
		t.Fatal(err)
	}
	if err := fs.Delete("/db-wal", false); err != sqlite3.IOERR_DELETE_NOENT {
		t.Fatalf("delete of a missing file: %v", err)
	}
	if _, _, err := fs.Open("/missing", vfs.OPEN_READWRITE); err != sqlite3.CANTOPEN {
		t.Fatalf("open of a missing file: %v", err)
	}
	tmp := mustOpen(t, fs, "", vfs.OPEN_READWRITE|vfs.OPEN_CREATE|vfs.OPEN_DELETEONCLOSE|vfs.OPEN_SUBJOURNAL)
	mustWrite(t, tmp, []byte("scratch"), 0)
	doc := mustOpen(t, fs, "/x", rw|vfs.OPEN_DELETEONCLOSE)
	doc.Close()
	if fs.Exists("/x") {
		t.Fatal("delete-on-close file survived its close")
	}
	if cs := fs.Cut(rand.New(rand.NewPCG(1, 1))); cs.Files != 0 {
		t.Fatalf("cut saw %d files, want 0 (temporary and deleted files are not durable)", cs.Files)
	}
}

// Concurrent writes, syncs and a cut: run with -race.
func TestFS_ConcurrentSyncWhileWriting(t *testing.T) {
	fs := New()
	f := mustOpen(t, fs, "/db-wal", rw)
	s := fs.Syncer()
	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := int64(0); !stop.Load(); i++ {
			if _, err := f.WriteAt([]byte("frame"), i%1000*5); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if s.SyncFile(f) != nil || s.SyncVolume() != nil {
				return
			}
		}
	}()
	for fs.Stats().Syncs < 100 {
		runtime.Gosched() // let them overlap; they stop at the cut
	}
	fs.Cut(rand.New(rand.NewPCG(1, 1)))
	stop.Store(true)
	wg.Wait()
}

// SQLite on the FS. Under synchronous=FULL every commit survives every cut
// (nothing is in flight when the cut comes). Under NORMAL, commits since
// the last checkpoint are not synced, and some are lost, but the database
// stays intact; under OFF nothing is synced and the database may be
// corrupted. Either way the simulation must see it.
func TestFS_SQLiteCommitsSurviveCuts(t *testing.T) {
	for _, tc := range []struct {
		sync         string
		wantFailures bool // losses or corruption must happen in some cycle
		mayCorrupt   bool
	}{{"FULL", false, false}, {"NORMAL", true, false}, {"OFF", true, true}} {
		t.Run(tc.sync, func(t *testing.T) {
			fs := New()
			name := fmt.Sprintf("faultfs-test-%s", tc.sync)
			vfs.Register(name, fs)
			defer vfs.Unregister(name)
			rng := rand.New(rand.NewPCG(7, 7))
			committed, losses, corrupt := 0, 0, 0
			for cycle := range 20 {
				c := openDB(t, name, tc.sync)
				if msg := integrity(t, c); msg != "ok" {
					if !tc.mayCorrupt {
						t.Fatalf("cycle %d: integrity_check: %s", cycle, msg)
					}
					corrupt++
					c.Close()
					break // nothing more to learn from a corrupt database
				}
				var n int
				if err := scanInt(c, "SELECT count(*) FROM t", &n); err != nil {
					t.Fatal(err)
				}
				if n < committed {
					losses++
					if !tc.wantFailures {
						t.Fatalf("cycle %d: %d rows, %d were committed", cycle, n, committed)
					}
				}
				committed = n
				for range 1 + rng.IntN(30) {
					if err := c.Exec("INSERT INTO t (v) VALUES (randomblob(300))"); err != nil {
						t.Fatal(err)
					}
					committed++
				}
				fs.Cut(rng)
				c.Close() // fails on dead handles; SQLite still frees the connection
				fs.Restart()
			}
			if tc.wantFailures && losses+corrupt == 0 {
				t.Fatalf("synchronous=%s lost no commit in 20 cuts: the simulation is blind", tc.sync)
			}
			t.Logf("synchronous=%s: %d cycles lost commits, %d found corruption; %+v", tc.sync, losses, corrupt, fs.Stats())
		})
	}
}

func openDB(t *testing.T, vfsName, sync string) *sqlite3.Conn {
	t.Helper()
	u := url.URL{Scheme: "file", Path: "/data/t.db", RawQuery: "vfs=" + vfsName}
	c, err := sqlite3.OpenFlags(u.String(), sqlite3.OPEN_READWRITE|sqlite3.OPEN_CREATE|sqlite3.OPEN_URI)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"PRAGMA locking_mode=EXCLUSIVE",
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=" + sync,
		"PRAGMA wal_autocheckpoint=20",
		"CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)",
	} {
		if err := c.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return c
}

func scanInt(c *sqlite3.Conn, q string, dst *int) error {
	s, _, err := c.Prepare(q)
	if err != nil {
		return err
	}
	defer s.Close()
	if !s.Step() {
		return fmt.Errorf("%s: no row: %v", q, s.Err())
	}
	*dst = s.ColumnInt(0)
	return nil
}

func integrity(t *testing.T, c *sqlite3.Conn) string {
	t.Helper()
	s, _, err := c.Prepare("PRAGMA integrity_check")
	if err != nil {
		return err.Error()
	}
	defer s.Close()
	var out []string
	for s.Step() {
		out = append(out, s.ColumnText(0))
	}
	if err := s.Err(); err != nil {
		return err.Error()
	}
	return strings.Join(out, "\n")
}

// A cut during a slow sync fails the sync, and the write stays unsynced.
func TestFS_CutDuringSlowSync(t *testing.T) {
	fs := New()
	f := mustOpen(t, fs, "/db", rw)
	mustWrite(t, f, bytes.Repeat([]byte{'x'}, SectorSize), 0)
	fs.SetSyncDelay(50 * time.Millisecond)
	done := make(chan error)
	go func() { done <- f.Sync(0) }()
	cs := fs.Cut(rand.New(rand.NewPCG(1, 1))) // before the delay ends, or before the sync starts
	if err := <-done; !errors.Is(err, ErrPowerCut) {
		t.Fatalf("sync across a cut: %v, want ErrPowerCut", err)
	}
	if cs.UnsyncedSectors != 1 {
		t.Fatalf("cut %+v: want the write unsynced", cs)
	}
}
