package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	osfs "github.com/osimagefs/osimagefs/fs"
)

func newStatusCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [--json] [MOUNTPOINT...]",
		Short: "Show the osimagefs mounts on this host and what each is doing",
		Long: `status lists the osimagefs mounts of this mount namespace (file system type
fuse.osimagefs in /proc/self/mountinfo), or only the MOUNTPOINTs given, with
the reference and digest each serves, its daemon's pid, the layer bytes
fetched from the registry, those cached locally (memory or disk cache),
those served to readers, and the reads that failed with EIO.

Each daemon answers with the extended attribute user.osimagefs.status of
its mount's root, so status needs the right to read the mount (a mount
without --allow-other is readable by its owner only).`,
		Example: `  osimagefs status
  osimagefs status --json /mnt/os | jq .served_bytes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.OutOrStdout(), args, asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per mount")
	return c
}

func runStatus(w io.Writer, dirs []string, asJSON bool) error {
	mounts, err := osimagefsMounts(dirs)
	if err != nil {
		return err
	}
	var rows []mountStatus
	failed := 0
	for _, m := range mounts {
		s, err := readStatus(m.Dir)
		if err != nil {
			failed++
			s = mountStatus{Reference: m.Source, Error: err.Error()}
		}
		s.Mountpoint = m.Dir // as this namespace sees it
		rows = append(rows, s)
	}
	if asJSON {
		if rows == nil {
			rows = []mountStatus{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
	} else if err := statusTable(w, rows); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("could not read the status of %d of %d mount(s)", failed, len(rows))
	}
	return nil
}

// osimagefsMounts returns the visible osimagefs mounts at dirs, or all of
// them when dirs is empty. A dir that is not an osimagefs mount is a
// usage error.
func osimagefsMounts(dirs []string) ([]osfs.MountInfo, error) {
	all, err := osfs.Mounts()
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	top := map[string]osfs.MountInfo{} // the visible mount at each point
	var order []string
	for _, m := range all {
		if _, seen := top[m.Dir]; !seen {
			order = append(order, m.Dir)
		}
		top[m.Dir] = m
	}
	var out []osfs.MountInfo
	if len(dirs) == 0 {
		for _, d := range order {
			if m := top[d]; m.FSType == osfs.FSType {
				out = append(out, m)
			}
		}
		return out, nil
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, usageError{fmt.Errorf("mount point %q: %w", d, err)}
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		m, ok := top[abs]
		switch {
		case !ok:
			return nil, usageError{fmt.Errorf("%s is not a mount point (nothing is mounted there)", d)}
		case m.FSType != osfs.FSType:
			return nil, usageError{fmt.Errorf("%s is not an osimagefs mount: it is %s (%s)", d, m.FSType, m.Source)}
		}
		out = append(out, m)
	}
	return out, nil
}

// statusWait is how long status waits for one daemon's answer: a stopped
// or stuck daemon must not hang the listing of the others.
const statusWait = 5 * time.Second

// readStatus asks the daemon serving the mount at dir for its status.
func readStatus(dir string) (mountStatus, error) {
	type answer struct {
		b   []byte
		err error
	}
	got := make(chan answer, 1)
	go func() { // left blocked in the kernel if the daemon never answers
		buf := make([]byte, 64<<10)
		n, err := unix.Getxattr(dir, osfs.XattrStatus, buf)
		if n < 0 {
			n = 0
		}
		got <- answer{buf[:n], err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-time.After(statusWait):
		return mountStatus{}, fmt.Errorf("read the status of %s: no answer from its daemon in %s (stopped or stuck?)", dir, statusWait)
	}
	buf, n, err := a.b, len(a.b), a.err
	if err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return mountStatus{}, fmt.Errorf("read the status of %s: %w (its daemon is gone; umount it)", dir, err)
		}
		return mountStatus{}, fmt.Errorf("read the status of %s: %w", dir, err)
	}
	var s mountStatus
	if err := json.Unmarshal(buf[:n], &s); err != nil {
		return mountStatus{}, fmt.Errorf("read the status of %s: %w", dir, err)
	}
	return s, nil
}

// statusTable writes rows as a table, sizes in binary units, then the
// last error of each mount that has one.
func statusTable(w io.Writer, rows []mountStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MOUNTPOINT\tREFERENCE\tDIGEST\tPID\tFETCHED\tCACHED\tSERVED\tERRORS")
	for _, r := range rows {
		ref, mp := printable(shortReference(r.Reference)), printable(r.Mountpoint)
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t%s\n", mp, ref, printable(r.Error))
			continue
		}
		errs := strconv.FormatInt(r.Errors, 10)
		if r.VerifyFailures > 0 {
			errs += fmt.Sprintf(" (%d corrupt)", r.VerifyFailures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", mp, ref, shortDigest(r.Digest), r.PID,
			units.BytesSize(float64(r.FetchedBytes)), units.BytesSize(float64(r.CachedBytes)),
			units.BytesSize(float64(r.ServedBytes)), errs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.LastError != "" {
			if _, err := fmt.Fprintf(w, "%s: last error: %s\n", printable(r.Mountpoint), printable(r.LastError)); err != nil {
				return err
			}
		}
	}
	return nil
}

// shortReference shortens the digest of a reference by digest
// (repo@sha256:...): the DIGEST column has it.
func shortReference(ref string) string {
	if repo, d, ok := strings.Cut(ref, "@"); ok {
		return repo + "@" + shortDigest(d)
	}
	return ref
}

// shortDigest is sha256: and the first 12 hex digits.
func shortDigest(d string) string {
	const keep = len("sha256:") + 12
	if len(d) > keep {
		return d[:keep]
	}
	return d
}
