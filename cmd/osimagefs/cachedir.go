package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// rootCacheDir is the default cache directory of root, kept apart from
// any $HOME that sudo may have passed on, so root never leaves its files
// in a user's ~/.cache.
const rootCacheDir = "/var/cache/osimagefs"

// cacheDirHelp describes the default of --cache-dir, in the flag help and
// the README alike.
const cacheDirHelp = `persistent chunk cache directory, or "none" for memory only ` +
	`(default: ` + rootCacheDir + ` for root, else $XDG_CACHE_HOME/osimagefs, else $HOME/.cache/osimagefs)`

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
