package blobstore

import "testing"

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/1000", 0, 99, 1000, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 0-99/*", 0, 99, -1, true},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"bytes -1-5/100", 0, 0, 0, false},
		{"bytes 0-5", 0, 0, 0, false},
		{"items 0-5/10", 0, 0, 0, false},
		{"bytes +1-5/10", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, l, tot, err := parseContentRange(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && (f != tc.first || l != tc.last || tot != tc.total) {
				t.Fatalf("got %d-%d/%d, want %d-%d/%d", f, l, tot, tc.first, tc.last, tc.total)
			}
		})
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1000", "bytes 0-0/*", "bytes 9-3/2", "bytes a-b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || (total >= 0 && last >= total) || total < -1 {
			t.Fatalf("%q parsed to an impossible range %d-%d/%d", s, first, last, total)
		}
	})
}
