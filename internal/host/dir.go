package host

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/durable-go/durable/internal/errs"
	"golang.org/x/sys/unix"
)

// LockDir takes the runtime's lock on dir: an exclusive flock of Dir/LOCK,
// held until the file is closed. A second Runtime on the same directory, in
// this process or another, gets errs.ErrLocked.
func LockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("durable: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("durable: open %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("durable: %s is in use by another runtime (in this process or another): %w", dir, errs.ErrLocked)
		}
		return nil, fmt.Errorf("durable: lock %s: %w", path, err)
	}
	return f, nil
}

// secretSize is the length of a generated runtime secret.
const secretSize = 32

// LoadSecret returns the runtime secret kept in dir/secret. The first
// start creates it: from given if not empty, else at random. Later starts
// must give the same secret or none: another one would silently change every
// named ID.
func LoadSecret(dir string, given []byte) ([]byte, error) {
	path := filepath.Join(dir, "secret")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		kept, derr := hex.DecodeString(string(bytes.TrimSpace(b)))
		if derr != nil || len(kept) == 0 {
			return nil, fmt.Errorf("durable: %s is damaged (want hex digits): restore it from a backup; a new secret would change every named object's ID", path)
		}
		if len(given) > 0 && !bytes.Equal(given, kept) {
			return nil, fmt.Errorf("durable: Config.Secret differs from the secret kept in %s: every named object's ID would change; use the kept secret, or a new data directory", path)
		}
		return kept, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("durable: read %s: %w", path, err)
	}
	secret := given
	if len(secret) == 0 {
		secret = make([]byte, secretSize)
		rand.Read(secret)
	}
	if err := writeDurably(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("durable: keep the runtime secret: %w", err)
	}
	return secret, nil
}

// writeDurably writes a file by a synced temporary file, a rename and a
// sync of the directory.
func writeDurably(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ListObjects returns the IDs of a namespace's objects that have a
// database on disk, from the store's directory layout.
func ListObjects(objectsDir, ns string) ([]string, error) {
	var ids []string
	shards, err := os.ReadDir(filepath.Join(objectsDir, ns))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(objectsDir, ns, sh.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if name, ok := cutSuffix(f.Name(), ".sqlite"); ok && !f.IsDir() {
				ids = append(ids, name)
			}
		}
	}
	return ids, nil
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return "", false
}

// ListObjectsAfter returns up to limit IDs of a namespace's objects with a
// database on disk, in ID order, after the ID after (""; from the start),
// and whether more follow. IDs sort as their shards do, so a page reads
// only the shards it needs.
func ListObjectsAfter(objectsDir, ns, after string, limit int) (ids []string, more bool, err error) {
	shards, err := os.ReadDir(filepath.Join(objectsDir, ns))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for _, sh := range shards {
		if !sh.IsDir() || (len(after) >= len(sh.Name()) && sh.Name() < after[:len(sh.Name())]) {
			continue // a shard wholly before the cursor
		}
		files, err := os.ReadDir(filepath.Join(objectsDir, ns, sh.Name()))
		if err != nil {
			return nil, false, err
		}
		for _, f := range files {
			id, ok := cutSuffix(f.Name(), ".sqlite")
			if !ok || f.IsDir() || id <= after {
				continue
			}
			if len(ids) == limit {
				return ids, true, nil
			}
			ids = append(ids, id)
		}
	}
	return ids, false, nil
}
