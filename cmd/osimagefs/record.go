package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/profile"
)

// recordHelp is the help of --record.
const recordHelp = `record a boot profile into FILE: each byte range of a layer read for the first time by a reader (not by read-ahead or prefetch), in order, with its time since the mount was ready; written at unmount (umount, SIGINT, SIGTERM), atomically. Publish it with osimagefs profile push. Turns FUSE passthrough off, so that every read is seen`

// recording is a mount's --record: the recorder and where it goes.
type recording struct {
	path string
	rec  *profile.Recorder
}

// newRecording checks that path can be written (its directory exists and
// takes a file) before anything is mounted; "" records nothing (nil).
func newRecording(path string) (*recording, error) {
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--record %s: %w", path, err)}
	}
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		return nil, usageError{fmt.Errorf("--record %s: is a directory", path)}
	}
	probe, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return nil, usageError{fmt.Errorf("--record %s: cannot write there: %w", path, err)}
	}
	probe.Close()
	os.Remove(probe.Name())
	return &recording{path: abs, rec: profile.NewRecorder(nil)}, nil
}

// reader records the reads of blob d through r; without --record it is r.
func (r *recording) reader(d digest.Digest, tr timeoutReader) osfs.BlobReader {
	if r == nil {
		return tr
	}
	return recordingReader{timeoutReader: tr, rec: r.rec, d: d}
}

// start sets the time at_ms counts from: the mount is ready.
func (r *recording) start() {
	if r != nil {
		r.rec.Start()
	}
}

// write stores the profile at unmount.
func (r *recording) write(log *slog.Logger) error {
	if r == nil {
		return nil
	}
	entries := r.rec.Entries()
	if r.rec.Full() {
		log.Warn("boot profile full: later reads were not recorded", "entries", len(entries))
	}
	if err := profile.WriteFile(r.path, entries); err != nil {
		return err
	}
	log.Info("boot profile written", "file", r.path, "entries", len(entries), "bytes", profile.Bytes(entries))
	return nil
}

// recordingReader is a reader whose successful reads are recorded; its
// read-ahead (Prefetch), and every other method of timeoutReader, pass
// through unrecorded.
type recordingReader struct {
	timeoutReader
	rec *profile.Recorder
	d   digest.Digest
}

func (r recordingReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := r.timeoutReader.ReadAt(ctx, p, off)
	if n > 0 {
		r.rec.Record(r.d, off, int64(n))
	}
	return n, err
}
