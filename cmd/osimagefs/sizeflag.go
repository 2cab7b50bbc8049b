package main

import (
	"fmt"

	units "github.com/docker/go-units"
)

// sizeFlag is a byte count given as "1048576", "256MiB", "1G" or "10GiB"
// (binary units either way).
type sizeFlag int64

// String is "0" for zero, which --help takes as no default to show (a
// flag whose default depends on others says so in its usage).
func (s *sizeFlag) String() string {
	if *s == 0 {
		return "0"
	}
	return units.BytesSize(float64(*s))
}

func (s *sizeFlag) Set(v string) error {
	n, err := units.RAMInBytes(v)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: use a byte count or a value such as 256MiB or 1GiB", v)
	}
	*s = sizeFlag(n)
	return nil
}

func (s *sizeFlag) Type() string { return "size" }
