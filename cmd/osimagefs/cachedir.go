package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/osimagefs/osimagefs/cache"
)

// rootCacheDir is the default cache directory of root, kept apart from
// any $HOME that sudo may have passed on, so root never leaves its files
// in a user's ~/.cache.
const rootCacheDir = "/var/cache/osimagefs"

// cacheDirHelp describes the default of --cache-dir, in the flag help and
// the README alike.
const cacheDirHelp = `persistent chunk cache directory, or "none" for memory only ` +
	`(default: ` + rootCacheDir + ` for root, else $XDG_CACHE_HOME/osimagefs, else $HOME/.cache/osimagefs; ` +
	`none for an oci: layout, whose blob files are read in place)`

// defaultCacheDir is the cache directory used without --cache-dir by a
// process of effective user euid. There is no shared fall-back such as
// /tmp, where another user could have made the directory first: without
// $XDG_CACHE_HOME and $HOME a user must say where the cache goes.
func defaultCacheDir(euid int) (string, error) {
	if euid == 0 {
		return rootCacheDir, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no default cache directory (%v): give --cache-dir DIR, or --cache-dir none for memory only", err)
	}
	return filepath.Join(d, "osimagefs"), nil
}

// openDiskCache opens the disk cache that --cache-dir names (its default
// when empty), for chunks of chunkSize and at most size bytes; nil for
// "none". A directory that cannot be used is a usage error.
func openDiskCache(dir string, chunkSize, size int64, log *slog.Logger) (*cache.Disk, error) {
	if dir == "none" {
		return nil, nil
	}
	if dir == "" {
		var err error
		if dir, err = defaultCacheDir(os.Geteuid()); err != nil {
			return nil, usageError{err}
		}
	}
	disk, err := cache.OpenDisk(dir, chunkSize, size, log)
	if err != nil {
		return nil, usageError{err}
	}
	log.Debug("disk cache", "dir", dir, "used", disk.Used(), "limit", disk.Limit())
	return disk, nil
}
