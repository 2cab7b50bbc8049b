package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}, {1, 1}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestReplaceSection(t *testing.T) {
	sec := beginMarker + "\nnew\n" + endMarker + "\n"
	doc := "# B\n\nintro\n\n" + beginMarker + "\nold\nold\n" + endMarker + "\n\n## Analysis\n"
	got := replaceSection(doc, sec)
	if want := "# B\n\nintro\n\n" + sec + "\n## Analysis\n"; got != want {
		t.Errorf("replace:\n%q\nwant\n%q", got, want)
	}
	if got := replaceSection("# B", sec); !strings.HasSuffix(got, sec) || !strings.HasPrefix(got, "# B\n") {
		t.Errorf("append: %q", got)
	}
}

func TestRandomOffsets(t *testing.T) {
	offs := randomOffsets(1, 1000, 1<<30, 4096)
	for _, o := range offs {
		if o%4096 != 0 || o < 0 || o+4096 > 1<<30 {
			t.Fatalf("offset %d out of range or unaligned", o)
		}
	}
}
