package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// helperName is the program mount(8) runs for `mount -t fuse.osimagefs`
// and fstab entries of that type; make install links it to osimagefs.
const helperName = "mount.fuse.osimagefs"

// helperArgs turns the command line of a mount helper into the arguments
// of `osimagefs mount`. Two forms are helpers:
//
//	mount.fuse.osimagefs SOURCE DIR [-s] [-f] [-n] [-v] [-o OPTS] [-t TYPE]  (mount(8))
//	osimagefs SOURCE DIR -o OPTS                                            (mount.fuse3)
//
// isCommand tells the subcommands of osimagefs apart from a SOURCE. ok is
// false for any other command line. A helper mount always goes to the
// background once the tree is served, as mount(8) expects.
func helperArgs(argv []string, isCommand func(string) bool) (args []string, ok bool, err error) {
	if len(argv) == 0 {
		return nil, false, nil
	}
	rest := argv[1:]
	if filepath.Base(argv[0]) != helperName {
		// mount.fuse3 form: a SOURCE where a command would be, and -o.
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") || isCommand(rest[0]) || !hasOptionO(rest) {
			return nil, false, nil
		}
	}
	args = []string{"mount", "--background", "--mount-helper"}
	var pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(rest) {
				return nil, true, usageError{fmt.Errorf("%s needs a value", a)}
			}
			i++
			if err := helperOption(a, rest[i], &args); err != nil {
				return nil, true, err
			}
		case strings.HasPrefix(a, "-o"):
			args = append(args, "-o", a[2:])
		case a == "-s":
			args = append(args, "--sloppy")
		case a == "-f":
			args = append(args, "--fake")
		case a == "-n", a == "-v":
			// no mtab to skip; verbosity is --log-level
		case a == "-h", a == "--help":
			return []string{"mount", "--help"}, true, nil
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, true, usageError{fmt.Errorf("%s: unknown mount helper option %s (mount.fuse.osimagefs SOURCE DIR [-sfnv] [-o OPTIONS])", argv[0], a)}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, true, usageError{fmt.Errorf("%s: want SOURCE (the image reference) and DIR (the mount point), got %d arguments", argv[0], len(pos))}
	}
	return append(args, "--", pos[0], pos[1]), true, nil
}

// helperOption handles a helper option that takes a value.
func helperOption(opt, v string, args *[]string) error {
	switch opt {
	case "-o":
		*args = append(*args, "-o", v)
	case "-t":
		if v != "fuse.osimagefs" && v != "osimagefs" {
			return usageError{fmt.Errorf("-t %s: this helper mounts only fuse.osimagefs", v)}
		}
	case "-N":
		return usageError{errors.New("-N (mount in another namespace) is not supported")}
	}
	return nil
}

func hasOptionO(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-o") {
			return true
		}
	}
	return false
}
