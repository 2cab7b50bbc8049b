package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// optionsFlag collects the -o options of a mount, applied to the mount
// command's own flags by applyMountOptions once the command line is parsed.
type optionsFlag []string

func (o *optionsFlag) String() string     { return strings.Join(*o, ",") }
func (o *optionsFlag) Type() string       { return "options" }
func (o *optionsFlag) Set(v string) error { *o = append(*o, v); return nil }

// optionsHelp is the help of -o.
const optionsHelp = "mount options as mount(8) and fstab give them (repeatable): any flag of this command as name=value, " +
	"a boolean as a bare name (plain-http), allow_other; ro, defaults, _netdev, nofail, noauto, user, nosuid, x-systemd.*, comment=... " +
	"are accepted and ignored. A flag given as a flag wins"

// ignoredOptions are standard mount options that mount(8), fstab or
// systemd use themselves, or that the mount satisfies anyway (it is always
// nosuid and nodev): accepted and ignored.
var ignoredOptions = map[string]bool{
	"ro": true, "defaults": true, "auto": true, "noauto": true,
	"user": true, "users": true, "nouser": true, "owner": true, "group": true,
	"_netdev": true, "nofail": true,
	"nodev": true, "nosuid": true, "noexec": true, "exec": true, "suid": true, "dev": true,
	// VFS options mount(8) passes on from fstab; a read-only FUSE mount
	// has no use for them.
	"atime": true, "noatime": true, "relatime": true, "norelatime": true, "strictatime": true,
	"nostrictatime": true, "diratime": true, "nodiratime": true, "lazytime": true, "nolazytime": true,
	"sync": true, "async": true, "dirsync": true, "silent": true, "loud": true,
	"iversion": true, "noiversion": true, "mand": true, "nomand": true,
}

// optionsNotFlags are flags that are not mount options.
var optionsNotFlags = map[string]bool{"help": true, "options": true}

// mountOptionsMode says how the mount was started.
type mountOptionsMode struct {
	// helper: started by mount(8) (mount.fuse.osimagefs), which adds "rw"
	// itself when the options do not say ro. The mount is read-only
	// whatever it asks, so rw is then accepted.
	helper bool
	// sloppy (mount -s): unknown options are ignored, not refused.
	sloppy bool
}

// applyMountOptions sets the flags of fs named by the -o options opts, in
// order. A flag that was given on the command line keeps its value. It
// returns the options it ignored because of sloppy mode.
func applyMountOptions(fs *pflag.FlagSet, opts []string, mode mountOptionsMode) (ignored []string, err error) {
	explicit := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { explicit[f.Name] = true })
	split, err := splitOptions(opts)
	if err != nil {
		return nil, err
	}
	for _, o := range split {
		name, value, hasValue := strings.Cut(o, "=")
		f, err := mountOption(fs, name, value, hasValue, mode)
		if errors.Is(err, errUnknownOption) && mode.sloppy {
			ignored = append(ignored, o)
			continue
		}
		if err != nil {
			return ignored, usageError{fmt.Errorf("-o %s: %w", o, err)}
		}
		if f == nil || explicit[f.Name] {
			continue
		}
		if !hasValue {
			value = f.NoOptDefVal // a bare boolean flag (mountOption checked)
		}
		if err := fs.Set(f.Name, value); err != nil {
			return ignored, usageError{fmt.Errorf("-o %s: %w", o, err)}
		}
	}
	return ignored, nil
}

var errUnknownOption = errors.New("unknown mount option")

// mountOption returns the flag an option sets, nil for an option that is
// accepted and ignored, or why the option cannot be used.
func mountOption(fs *pflag.FlagSet, name, value string, hasValue bool, mode mountOptionsMode) (*pflag.Flag, error) {
	switch {
	case name == "":
		return nil, errors.New("empty option name")
	case name == "rw" && !hasValue:
		if mode.helper {
			return nil, nil
		}
		return nil, errors.New("the mount is read-only: use ro, or leave it out")
	case ignoredOptions[name] && !hasValue, name == "comment", strings.HasPrefix(name, "x-"):
		return nil, nil
	case name == "allow_other":
		name = "allow-other"
	}
	flagName := strings.ReplaceAll(name, "_", "-") // FUSE options use underscores
	f := fs.Lookup(flagName)
	if f == nil || f.Hidden || optionsNotFlags[f.Name] {
		return nil, fmt.Errorf("%w %q (see osimagefs mount --help)", errUnknownOption, name)
	}
	if !hasValue && f.NoOptDefVal == "" {
		return nil, fmt.Errorf("needs a value: %s=%s", name, f.Value.Type())
	}
	if hasValue && value == "" && f.Value.Type() != "string" {
		return nil, errors.New("empty value")
	}
	return f, nil
}

// splitOptions splits comma-separated option strings into options. As in
// libmount, a double-quoted part may hold commas (comment="a,b"); the
// quotes are removed.
func splitOptions(opts []string) ([]string, error) {
	var out []string
	for _, s := range opts {
		var cur strings.Builder
		quoted := false
		for _, r := range s {
			switch {
			case r == '"':
				quoted = !quoted
			case r == ',' && !quoted:
				if cur.Len() > 0 {
					out = append(out, cur.String())
				}
				cur.Reset()
			default:
				cur.WriteRune(r)
			}
		}
		if quoted {
			return nil, usageError{fmt.Errorf("mount options %q: a quote is not closed", s)}
		}
		if cur.Len() > 0 {
			out = append(out, cur.String())
		}
	}
	return out, nil
}
