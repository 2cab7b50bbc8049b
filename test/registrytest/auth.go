package registrytest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// WriteHtpasswd writes users (user -> password) to path in the htpasswd
// format Distribution's htpasswd access controller reads (bcrypt hashes
// only), replacing the file atomically so that a running registry reloads
// it whole.
func WriteHtpasswd(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") {
			return fmt.Errorf("htpasswd: bad user name %q", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		// bcrypt.MinCost keeps tests fast; the registry accepts any cost.
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("htpasswd: hash password of %s: %w", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".htpasswd-")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
