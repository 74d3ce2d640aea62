package usage

import (
	"fmt"
	"testing"

	"github.com/durable-go/durable/internal/store"
)

func openBook(t *testing.T, dir string) (*store.Store, *Book) {
	t.Helper()
	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(st)
	if err != nil {
		t.Fatal(err)
	}
	return st, b
}

// A flush of many objects' deltas is one transaction; deltas add up;
// bytes are replaced, -1 keeps them; Top orders and limits; it all
// survives reopening.
func TestBook_AddsInOneTransactionAndKeeps(t *testing.T) {
	dir := t.TempDir()
	st, b := openBook(t, dir)
	var deltas []Delta
	for i := range 100 {
		deltas = append(deltas, Delta{NS: "N", ID: fmt.Sprintf("o%03d", i), Requests: int64(i), WallNanos: 10, RowsRead: 2, RowsWritten: 1, Bytes: 4096})
	}
	if err := b.Add(deltas); err != nil {
		t.Fatal(err)
	}
	if err := b.Add([]Delta{{NS: "N", ID: "o005", Requests: 100, Bytes: -1}}); err != nil {
		t.Fatal(err)
	}
	if n := b.Flushes(); n != 2 {
		t.Errorf("two Adds wrote %d transactions, want 2", n)
	}
	b.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, b = openBook(t, dir)
	defer st.Close()
	defer b.Close()
	got, err := b.Get("N", "o005")
	if err != nil || got.Requests != 105 || got.RowsRead != 2 || got.Bytes != 4096 {
		t.Fatalf("o005 after reopening = %+v, %v; want 105 requests, 2 rows read, 4096 bytes kept", got, err)
	}
	top, err := b.Top("N", "requests", 3)
	if err != nil || len(top) != 3 || top[0].ID != "o005" || top[1].ID != "o099" || top[2].ID != "o098" {
		t.Fatalf("top 3 by requests = %+v, %v", top, err)
	}
	if _, err := b.Top("", "nonsense", 3); err == nil {
		t.Error("an unknown order was accepted")
	}
	if none, err := b.Get("N", "never"); err != nil || none.Requests != 0 {
		t.Errorf("an object that used nothing: %+v, %v", none, err)
	}
}
