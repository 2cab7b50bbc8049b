package profile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Encode writes entries as a profile document, one entry a line.
func Encode(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString("["); err != nil {
		return err
	}
	for i, e := range entries {
		sep := ",\n  "
		if i == 0 {
			sep = "\n  "
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := bw.WriteString(sep); err != nil {
			return err
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("\n]\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteFile stores entries at path atomically: written to a temporary file
// beside it, synced, made 0644 and renamed over path, so a reader sees the
// old file or the whole new one, never a part.
func WriteFile(path string, entries []Entry) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write boot profile %s: %w", path, err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write boot profile %s: %w", path, err)
	}
	if err := Encode(tmp, entries); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write boot profile %s: %w", path, err)
	}
	return nil
}
