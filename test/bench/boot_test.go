package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestConsoleWatch checks that a boot ends only when every marker has
// appeared, in order, even split across writes.
func TestConsoleWatch(t *testing.T) {
	c := &consoleWatch{markers: []string{"MARK-A", "MARK-B"}, done: make(chan struct{})}
	for _, w := range []string{"boot MARK-B early\n", "MARK-", "A\n", "then MA", "RK-B\n"} {
		select {
		case <-c.done:
			t.Fatalf("done before %q", w)
		default:
		}
		_, _ = c.Write([]byte(w))
	}
	select {
	case <-c.done:
	case <-time.After(time.Second):
		t.Fatal("not done after both markers")
	}
	if c.at.IsZero() {
		t.Fatal("no time recorded")
	}
}

// TestParseSet checks the lists -only, -boot-rows and -boot-cols take.
func TestParseSet(t *testing.T) {
	got, err := parseSet("-x", "a, b,,", []string{"a", "b", "c"})
	if err != nil || !got["a"] || !got["b"] || got["c"] {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseSet("-x", "a,d", []string{"a"}); err == nil {
		t.Fatal("an unknown name was accepted")
	}
}

// TestCheckProfileUse checks that a column without a profile fails when
// its mount replayed one, and one with a profile when it did not.
func TestCheckProfileUse(t *testing.T) {
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.log"), filepath.Join(dir, "without.log")
	if err := os.WriteFile(with, []byte("level=INFO msg=\""+profileFoundLog+"\" entries=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(without, []byte("level=INFO msg=mounted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want bool
		ok   bool
	}{{with, true, true}, {with, false, false}, {without, true, false}, {without, false, true}} {
		if err := checkProfileUse(c.path, c.want); (err == nil) != c.ok {
			t.Errorf("%s, want profile %v: error %v", filepath.Base(c.path), c.want, err)
		}
	}
}
