package profile

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, fails only with ErrInvalid, and what it
// accepts encodes and parses back to the same entries.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`[{"digest":"sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","off":0,"len":1,"at_ms":0}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"digest":"sha256:x","off":-1,"len":0}]`))
	f.Add([]byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := Parse(bytes.NewReader(doc))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		for i, e := range out {
			if e.Len <= 0 || e.Off < 0 || e.End() < e.Off {
				t.Fatalf("entry %d accepted: %+v", i, e)
			}
		}
		var buf bytes.Buffer
		if err := Encode(&buf, out); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(&buf)
		if err != nil || (len(out) > 0 && !reflect.DeepEqual(out, again)) {
			t.Fatalf("round trip: %v, %v", again, err)
		}
	})
}
