package durable

import (
	"github.com/durable-go/durable/internal/id"
)

// ID identifies an object within its namespace: 32 bytes, shown as 64
// lowercase hex digits. IDs from IDFromName are stable across restarts;
// NewUniqueID's are random. Compare IDs with Equal (or use String as a map
// key): two IDs of one object are Equal even if only one carries a name.
type ID struct {
	b    [id.Size]byte
	name string
}

// String returns the ID's 64 lowercase hex digits.
func (i ID) String() string { return id.String(i.b) }

// Name returns the name the ID was made from ("" for unique IDs and IDs
// parsed from strings). Inside an object, State.ID().Name() returns the
// object's name whenever it was ever addressed by name.
func (i ID) Name() string { return i.name }

// Equal reports whether two IDs name the same object.
func (i ID) Equal(o ID) bool { return i.b == o.b }

func (i ID) isZero() bool { return i.b == [id.Size]byte{} }
