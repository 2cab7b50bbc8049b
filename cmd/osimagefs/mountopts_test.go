package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// parsedMountCmd is the mount command with args parsed (persistent flags
// of the root merged in, as when it runs).
func parsedMountCmd(t *testing.T, args ...string) *cobra.Command {
	t.Helper()
	root := newRootCmd()
	c, _, err := root.Find([]string{"mount"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func flagValue(t *testing.T, fs *pflag.FlagSet, name string) string {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil {
		t.Fatalf("no flag %s", name)
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), " ")
	}
	return f.Value.String()
}

func TestApplyMountOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string          // the command line before -o
		opts    []string          // the -o values
		mode    mountOptionsMode  // how mount was started
		want    map[string]string // flag -> value afterwards
		wantErr string            // a part of the error; "" for none
		ignored []string
	}{
		{name: "bool bare", opts: []string{"plain-http"}, want: map[string]string{"plain-http": "true"}},
		{name: "bool false", opts: []string{"plain-http=false"}, want: map[string]string{"plain-http": "false"}},
		{name: "passthrough on by default", opts: []string{"plain-http"}, want: map[string]string{"passthrough": "true"}},
		{name: "passthrough off", opts: []string{"passthrough=false"}, want: map[string]string{"passthrough": "false"}},
		{name: "size", opts: []string{"cache-size=20GiB"}, want: map[string]string{"cache-size": "20GiB"}},
		{name: "several in one", opts: []string{"plain-http,cache-size=20GiB,allow_other,parallel=4"},
			want: map[string]string{"plain-http": "true", "cache-size": "20GiB", "allow-other": "true", "parallel": "4"}},
		{name: "several -o", opts: []string{"plain-http", "read-timeout=5m"}, want: map[string]string{"plain-http": "true", "read-timeout": "5m0s"}},
		{name: "underscores", opts: []string{"read_ahead=0,cache_dir=/var/cache/x"}, want: map[string]string{"read-ahead": "0", "cache-dir": "/var/cache/x"}},
		{name: "repeatable", opts: []string{"platform=linux/amd64,platform=linux/arm64"}, want: map[string]string{"platform": "linux/amd64 linux/arm64"}},
		{name: "persistent flag", opts: []string{"log-level=debug"}, want: map[string]string{"log-level": "debug"}},
		{name: "background and log file", opts: []string{"background,log-file=/var/log/osimagefs.log"},
			want: map[string]string{"background": "true", "log-file": "/var/log/osimagefs.log"}},
		{name: "flag wins over -o", args: []string{"--cache-size", "1GiB"}, opts: []string{"cache-size=2GiB,plain-http"},
			want: map[string]string{"cache-size": "1GiB", "plain-http": "true"}},
		{name: "standard options ignored",
			opts: []string{"ro,defaults,auto,noauto,user,users,nouser,_netdev,nofail,nodev,nosuid,noexec,exec,suid,dev,x-systemd.automount,x-systemd.requires=network-online.target,comment=osimagefs,noatime,relatime,nodiratime,lazytime,async"},
			want: map[string]string{"plain-http": "false", "allow-other": "false"}},
		{name: "quoted comma", opts: []string{`comment="a,b",plain-http`}, want: map[string]string{"plain-http": "true"}},
		{name: "empty parts", opts: []string{",plain-http,,"}, want: map[string]string{"plain-http": "true"}},
		{name: "rw refused", opts: []string{"rw"}, wantErr: "-o rw: the mount is read-only"},
		{name: "rw from mount(8)", opts: []string{"rw,plain-http"}, mode: mountOptionsMode{helper: true}, want: map[string]string{"plain-http": "true"}},
		{name: "unknown", opts: []string{"plain-http,bogus=1"}, wantErr: `unknown mount option "bogus"`},
		{name: "unknown bare", opts: []string{"nosuchthing"}, wantErr: `unknown mount option "nosuchthing"`},
		{name: "unknown sloppy", opts: []string{"plain-http,bogus=1"}, mode: mountOptionsMode{sloppy: true},
			want: map[string]string{"plain-http": "true"}, ignored: []string{"bogus=1"}},
		{name: "help is no option", opts: []string{"help"}, wantErr: `unknown mount option "help"`},
		{name: "-o is no option", opts: []string{"options=x"}, wantErr: `unknown mount option "options"`},
		{name: "hidden is no option", opts: []string{"mount-helper"}, wantErr: `unknown mount option "mount-helper"`},
		{name: "value missing", opts: []string{"cache-size"}, wantErr: "-o cache-size: needs a value: cache-size=size"},
		{name: "value empty", opts: []string{"parallel="}, wantErr: "-o parallel=: empty value"},
		{name: "value bad", opts: []string{"cache-size=lots"}, wantErr: `-o cache-size=lots: invalid argument "lots"`},
		{name: "bool bad", opts: []string{"plain-http=maybe"}, wantErr: `-o plain-http=maybe`},
		{name: "ro with a value", opts: []string{"ro=1"}, wantErr: `unknown mount option "ro"`},
		{name: "empty name", opts: []string{"=1"}, wantErr: "empty option name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parsedMountCmd(t, tc.args...)
			ignored, err := applyMountOptions(c.Flags(), tc.opts, tc.mode)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if code := exitCode(err); code != exitUsage {
					t.Fatalf("exit status %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ignored, tc.ignored) {
				t.Fatalf("ignored %q, want %q", ignored, tc.ignored)
			}
			for name, want := range tc.want {
				if got := flagValue(t, c.Flags(), name); got != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestEveryMountFlagIsAnOption walks the mount command's flags, so that
// a flag added later is checked too: each is accepted as an -o option.
func TestEveryMountFlagIsAnOption(t *testing.T) {
	c := parsedMountCmd(t)
	var n int
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || optionsNotFlags[f.Name] {
			return
		}
		n++
		opt := f.Name
		if f.NoOptDefVal == "" {
			v := f.DefValue
			if _, ok := f.Value.(pflag.SliceValue); ok {
				v = "x" // the default of a list is "[]"
			}
			if v == "" {
				v = "x"
			}
			opt += "=" + v
		}
		fresh := parsedMountCmd(t)
		if _, err := applyMountOptions(fresh.Flags(), []string{opt}, mountOptionsMode{}); err != nil {
			t.Errorf("-o %s: %v", opt, err)
		}
		if !fresh.Flags().Changed(f.Name) {
			t.Errorf("-o %s did not set --%s", opt, f.Name)
		}
	})
	if n < 15 {
		t.Fatalf("only %d mount flags seen", n)
	}
}

func TestSplitOptions(t *testing.T) {
	for in, want := range map[string][]string{
		"a,b=1,c":             {"a", "b=1", "c"},
		`comment="x,y",a`:     {"comment=x,y", "a"},
		",,a,,":               {"a"},
		"":                    nil,
		`x-systemd.after=a,b`: {"x-systemd.after=a", "b"},
	} {
		if got, err := splitOptions([]string{in}); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitOptions(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// An open quote would swallow the options after it: refused.
	if got, err := splitOptions([]string{`comment=it"s,plain-http`}); err == nil || exitCode(err) != exitUsage {
		t.Errorf("an unclosed quote: %q, %v; want a usage error", got, err)
	}
}

func TestHelperArgs(t *testing.T) {
	isCmd := isCommand(newRootCmd())
	const ref = "registry.example.com:5000/os/debian:12"
	base := []string{"mount", "--background", "--mount-helper"}
	with := func(extra ...string) []string {
		return append(append(append([]string{}, base...), extra...), "--", ref, "/mnt/os")
	}
	tests := []struct {
		name    string
		argv    []string
		want    []string // nil: not a helper command line
		wantErr string
	}{
		{name: "mount(8)", argv: []string{"/sbin/mount.fuse.osimagefs", ref, "/mnt/os", "-o", "rw,plain-http"}, want: with("-o", "rw,plain-http")},
		{name: "mount(8) flags", argv: []string{"/sbin/mount.fuse.osimagefs", ref, "/mnt/os", "-s", "-f", "-n", "-v", "-o", "ro"},
			want: with("--sloppy", "--fake", "-o", "ro")},
		{name: "no options", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os"}, want: with()},
		{name: "-t", argv: []string{"/usr/sbin/mount.fuse.osimagefs", ref, "/mnt/os", "-o", "ro", "-t", "fuse.osimagefs"}, want: with("-o", "ro")},
		{name: "-oOPTS", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os", "-oplain-http"}, want: with("-o", "plain-http")},
		{name: "digest reference", argv: []string{"mount.fuse.osimagefs", "r.example/os/x@sha256:0123", "/mnt/os", "-o", "ro"},
			want: append(append([]string{}, base...), "-o", "ro", "--", "r.example/os/x@sha256:0123", "/mnt/os")},
		{name: "mount.fuse3 form", argv: []string{"osimagefs", ref, "/mnt/os", "-o", "plain-http"}, want: with("-o", "plain-http")},
		{name: "help", argv: []string{"mount.fuse.osimagefs", "--help"}, want: []string{"mount", "--help"}},
		{name: "wrong type", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os", "-t", "fuse.sshfs"}, wantErr: "mounts only fuse.osimagefs"},
		{name: "namespace", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os", "-N", "/proc/1/ns/mnt"}, wantErr: "-N"},
		{name: "unknown flag", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os", "-x"}, wantErr: "unknown mount helper option -x"},
		{name: "-o without value", argv: []string{"mount.fuse.osimagefs", ref, "/mnt/os", "-o"}, wantErr: "-o needs a value"},
		{name: "one argument", argv: []string{"mount.fuse.osimagefs", ref}, wantErr: "got 1 arguments"},
		{name: "ordinary command", argv: []string{"osimagefs", "mount", "-o", "plain-http", ref, "/mnt/os"}},
		{name: "ordinary, no -o", argv: []string{"osimagefs", ref, "/mnt/os"}},
		{name: "flags first", argv: []string{"osimagefs", "--log-level", "debug", "mount", ref, "/mnt/os", "-o", "x"}},
		{name: "help command", argv: []string{"osimagefs", "help", "mount", "-o"}},
		{name: "nothing", argv: []string{"osimagefs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := helperArgs(tc.argv, isCmd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !ok {
					t.Fatalf("helperArgs = %q, %v, %v; want an error containing %q", got, ok, err, tc.wantErr)
				}
				if !errors.As(err, new(usageError)) {
					t.Fatalf("error %v is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("helperArgs = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}
