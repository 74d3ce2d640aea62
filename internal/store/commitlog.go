package store

import (
	"context"
	"errors"
	"io"

	"github.com/durable-go/durable/internal/route"
)

// LSN is a position in an object's commit log: the stream sequence in
// cluster mode, a local commit counter in single-node mode.
type LSN uint64

// ErrFenced: a newer writer holds the object; this activation must stop.
var ErrFenced = errors.New("store: fenced by a newer writer")

// ErrNoSnapshot: the snapshot store holds no image of the object.
var ErrNoSnapshot = errors.New("store: no snapshot")

// CommitLog is the seam of a replicated log of each object's committed
// batches (DESIGN.md §4). In single-node mode the local disk is the log: the
// coordinator's sync is the durability point, and nothing is appended.
type CommitLog interface {
	// Open fences earlier writers of the object and returns its log.
	Open(ctx context.Context, id route.ObjectID, g route.Grant) (ObjectLog, error)
}

// ObjectLog is one object's log.
type ObjectLog interface {
	Tail() LSN
	// Append adds a record; it never reports an ambiguous success, and
	// fails with ErrFenced when a newer writer took over.
	Append(ctx context.Context, rec []byte) (LSN, error)
	Replay(ctx context.Context, after LSN, fn func(LSN, []byte) error) error
	Compact(ctx context.Context, upTo LSN) error
	Close() error
}

// SnapshotStore keeps whole-database images at log positions.
type SnapshotStore interface {
	Put(ctx context.Context, id route.ObjectID, at LSN, r io.Reader) error
	Latest(ctx context.Context, id route.ObjectID) (LSN, io.ReadCloser, error)
}

// LocalLog is the single-node CommitLog: the database file is the log.
type LocalLog struct{}

// Open returns an empty log; replay finds nothing to apply.
func (LocalLog) Open(ctx context.Context, id route.ObjectID, g route.Grant) (ObjectLog, error) {
	return localObjectLog{}, nil
}

type localObjectLog struct{}

func (localObjectLog) Tail() LSN { return 0 }
func (localObjectLog) Append(ctx context.Context, rec []byte) (LSN, error) {
	return 0, errors.New("store: the local log keeps no records: the database file is durable by itself")
}
func (localObjectLog) Replay(ctx context.Context, after LSN, fn func(LSN, []byte) error) error {
	return nil
}
func (localObjectLog) Compact(ctx context.Context, upTo LSN) error { return nil }
func (localObjectLog) Close() error                                { return nil }

// LocalSnapshots is the single-node SnapshotStore: there are none; the
// database file is the state.
type LocalSnapshots struct{}

func (LocalSnapshots) Put(ctx context.Context, id route.ObjectID, at LSN, r io.Reader) error {
	return errors.New("store: the local snapshot store keeps no images")
}

func (LocalSnapshots) Latest(ctx context.Context, id route.ObjectID) (LSN, io.ReadCloser, error) {
	return 0, nil, ErrNoSnapshot
}
