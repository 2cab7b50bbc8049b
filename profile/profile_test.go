package profile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	dA = digest.FromString("a")
	dB = digest.FromString("b")
)

func TestParseRoundTrip(t *testing.T) {
	in := []Entry{{dA, 0, 4096, 0}, {dB, 1 << 20, 65536, 12}, {dA, 8192, 1, 40}}
	var buf bytes.Buffer
	if err := Encode(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %v, want %v", out, in)
	}
	if out, err := Parse(strings.NewReader(" [ ] ")); err != nil || len(out) != 0 {
		t.Fatalf("empty profile: %v, %v", out, err)
	}
}

func TestParseErrors(t *testing.T) {
	ok := fmt.Sprintf(`{"digest":%q,"off":0,"len":1,"at_ms":0}`, dA)
	for _, c := range []struct{ name, doc, want string }{
		{"not JSON", `hello`, "not a JSON array"},
		{"object", `{"digest":"x"}`, "not a JSON array"},
		{"truncated", `[` + ok + `,`, "entry 1"},
		{"unknown field", `[` + ok + `,{"digest":"` + dA.String() + `","off":0,"len":1,"at_ms":0,"x":1}]`, `entry 1: json: unknown field "x"`},
		{"zero len", `[{"digest":"` + dA.String() + `","off":0,"len":0,"at_ms":0}]`, "entry 0: len 0: must be positive"},
		{"negative off", `[` + ok + `,{"digest":"` + dA.String() + `","off":-1,"len":1,"at_ms":0}]`, "entry 1: off -1"},
		{"negative at", `[{"digest":"` + dA.String() + `","off":0,"len":1,"at_ms":-5}]`, "entry 0: at_ms -5"},
		{"overflow", `[{"digest":"` + dA.String() + `","off":9223372036854775000,"len":100000,"at_ms":0}]`, "entry 0: off 9223372036854775000 + len 100000 overflows"},
		{"bad digest", `[{"digest":"sha256:xyz","off":0,"len":1,"at_ms":0}]`, `entry 0: digest "sha256:xyz"`},
		{"no digest", `[{"off":0,"len":1,"at_ms":0}]`, "entry 0: no digest"},
		{"string len", `[{"digest":"` + dA.String() + `","off":0,"len":"1","at_ms":0}]`, "entry 0: json: cannot unmarshal string"},
		{"trailing", `[` + ok + `] []`, "more JSON after the array"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.doc))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%s) = %v, want an ErrInvalid saying %q", c.doc, err, c.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i <= MaxEntries; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"digest":%q,"off":%d,"len":1,"at_ms":0}`, dA, i)
	}
	b.WriteString("]")
	if _, err := Parse(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "more than 100000 entries") {
		t.Fatalf("too many entries: %v", err)
	}
	big := "[" + strings.Repeat(" ", MaxSize) + "]"
	if _, err := Parse(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("too large: %v", err)
	}
}

func TestCheck(t *testing.T) {
	layers := map[digest.Digest]int64{dA: 100}
	if err := Check([]Entry{{dA, 0, 100, 0}}, layers); err != nil {
		t.Fatal(err)
	}
	err := Check([]Entry{{dA, 0, 1, 0}, {dB, 0, 1, 0}}, layers)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 1 || !errors.Is(err, ErrNotInImage) || !strings.Contains(err.Error(), "no layer of the image") {
		t.Fatalf("unknown digest: %v", err)
	}
	err = Check([]Entry{{dA, 50, 51, 0}}, layers)
	if !errors.As(err, &ee) || ee.Index != 0 || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("past the end: %v", err)
	}
}

func TestRecorder(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRecorder(func() time.Time { return now })
	r.Start()
	r.Record(dA, 0, 4096) // new
	now = now.Add(5 * time.Millisecond)
	r.Record(dA, 4096, 4096) // extends the last entry of A
	r.Record(dB, 100, 10)    // new
	r.Record(dA, 0, 8192)    // seen: nothing
	now = now.Add(5 * time.Millisecond)
	r.Record(dA, 8192, 100) // extends A's entry, though B came between
	r.Record(dA, 20000, 10) // new
	r.Record(dA, 19990, 40) // only 19990-20000 and 20010-20030 are new
	r.Record(dB, 0, 0)      // nothing
	want := []Entry{
		{dA, 0, 8292, 0},
		{dB, 100, 10, 5},
		{dA, 20000, 10, 10},
		{dA, 19990, 10, 10},
		{dA, 20010, 20, 10},
	}
	if got := r.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boot.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := []Entry{{dA, 0, 1, 0}}
	if err := WriteFile(path, in); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v, %v", st, err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if out, err := Parse(f); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("read back: %v, %v", out, err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "dir", "p.json"), in); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}
