package store

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3/vfs"
)

type recSyncer struct {
	*osSyncer
	mu   sync.Mutex
	dirs []string
}

func (r *recSyncer) SyncDir(p string) error {
	r.mu.Lock()
	r.dirs = append(r.dirs, p)
	r.mu.Unlock()
	return r.osSyncer.SyncDir(p)
}

func (r *recSyncer) SyncFile(f vfs.File) error { return r.osSyncer.SyncFile(f) }

const crashedCreationEnv = "DURABLE_CRASHED_CREATION_CHILD"

// The child creates an object's database (directories, template, rename)
// and is killed before its first batch commits.
func TestCrashedCreationChild(t *testing.T) {
	dir := os.Getenv(crashedCreationEnv)
	if dir == "" {
		t.Skip("child only")
	}
	st, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := st.Acquire("NS", "ab0123")
	if err := o.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := o.Exec("CREATE TABLE t (x)").Err(); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// After a crash between a new database's creation and its first commit,
// the next process finds the file: before it acknowledges a write in it,
// it fsyncs the directories the dead process created (objects/NS holding
// the shard directory, objects holding NS), which SQLite's own first WAL
// sync does not cover (docs/ARCHITECTURE.md "Directory entries of new
// databases").
func TestDirsOfACrashedCreationAreSynced(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedCreationChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashedCreationEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child did not die by signal: %v\n%s", err, out)
	}
	objects := filepath.Join(dir, "objects")
	path := filepath.Join(objects, "NS", "ab", "ab0123.sqlite")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the child's database is not there: %v", err)
	}
	os2, err := newOSSyncer(objects)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recSyncer{osSyncer: os2}
	st := mustStore(t, Config{Dir: dir, Syncer: rec})
	o := mustObject(t, st, "NS", "ab0123")
	mustTurn(t, o, func() error { return o.Put("k", "acknowledged") })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	t.Logf("directories fsynced before the first acknowledged write: %q", rec.dirs)
	need := []string{filepath.Join(objects, "NS"), objects}
	for _, d := range need {
		found := false
		for _, s := range rec.dirs {
			found = found || s == d
		}
		if !found {
			t.Errorf("%s (an entry the dead process created) was never fsynced, yet a write was acknowledged", d)
		}
	}
}
