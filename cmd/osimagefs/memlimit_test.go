package main

import "testing"

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name       string
		gomemlimit string
		want       int64
		set        bool
	}{
		{"GOMEMLIMIT unset: computed", "", 256<<20 + memoryLimitSlack, true},
		{"GOMEMLIMIT set: the user's wins", "1GiB", 0, false},
		{"GOMEMLIMIT=off: the user's wins", "off", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, set := memoryLimit(tc.gomemlimit, 256<<20)
			if got != tc.want || set != tc.set {
				t.Errorf("memoryLimit(%q, 256MiB) = %d, %v; want %d, %v", tc.gomemlimit, got, set, tc.want, tc.set)
			}
		})
	}
}
