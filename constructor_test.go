package durable_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Seeded is a class whose constructor seeds a row under a deferred foreign
// key that the row violates: the constructor's COMMIT fails (a COMMIT that
// fails for any reason: ENOSPC, EIO, a deferred constraint).
type Seeded struct {
	st     *durable.State
	seeded int64 // what the constructor saw in storage after writing
}

func (s *Seeded) Seen(ctx context.Context, _ int) (int64, error) { return s.seeded, nil }

func (s *Seeded) Count(ctx context.Context, _ int) (int64, error) {
	var n int64
	err := s.st.Storage().Exec("SELECT count(*) FROM child").Scan(&n)
	return n, err
}

// A constructor whose COMMIT fails (here a deferred foreign key; on a real
// machine ENOSPC or EIO): the first call fails with ErrObjectReset, never
// acknowledged on writes that are gone, and no instance is built on them.
func TestConstructorCommitFailureFailsTheCall(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "SEEDED", func(st *durable.State) (*Seeded, error) {
		s := &Seeded{st: st}
		err := st.Storage().Exec(`CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
			CREATE TABLE IF NOT EXISTS child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
			INSERT INTO child VALUES (42)`).Err()
		if err != nil {
			return nil, err
		}
		if err := st.Storage().Exec("SELECT count(*) FROM child").Scan(&s.seeded); err != nil {
			return nil, err
		}
		return s, nil
	})
	stub := ns.GetByName("x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen, err := durable.Call(ctx, stub, (*Seeded).Seen, 0)
	t.Logf("first call: Seen = %d, err = %v", seen, err)
	if err == nil {
		n, cerr := durable.Call(ctx, stub, (*Seeded).Count, 0)
		t.Logf("second call: Count = %d, err = %v", n, cerr)
		t.Fatalf("the first call was acknowledged (returned %d rows seen) although the constructor's COMMIT failed and its writes are gone", seen)
	}
	if !errors.Is(err, durable.ErrObjectReset) {
		t.Fatalf("first call: %v, want ErrObjectReset", err)
	}
}

// NamedRoom is a class whose constructor writes (its schema) and whose methods
// may only read.
type NamedRoom struct{ st *durable.State }

func (r *NamedRoom) Name(ctx context.Context, _ int) (string, error) { return r.st.ID().Name(), nil }

// An object addressed by name keeps its name with its first write, even
// when that write is only its constructor's (committed on its own): after a
// restart an event that does not carry the name still sees it.
func TestNameStoredWhenOnlyTheConstructorWrites(t *testing.T) {
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir})
	newRoom := func(st *durable.State) (*NamedRoom, error) {
		return &NamedRoom{st: st}, st.Storage().Exec("CREATE TABLE IF NOT EXISTS msgs (m TEXT)").Err()
	}
	ns := durable.Define(rt, "ROOM", newRoom)
	ctx := context.Background()
	if n, err := durable.Call(ctx, ns.GetByName("lobby"), (*NamedRoom).Name, 0); err != nil || n != "lobby" {
		t.Fatalf("Name = %q, %v", n, err)
	}
	id := ns.IDFromName("lobby").String()
	rt = durabletest.Restart(t, rt)
	ns = durable.Define(rt, "ROOM", newRoom)
	pid, err := ns.IDFromString(id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := durable.Call(ctx, ns.Get(pid), (*NamedRoom).Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != "lobby" {
		t.Fatalf("after a restart, ID().Name() of an object addressed by name whose constructor wrote = %q, want %q (the name was never stored)", n, "lobby")
	}
}
