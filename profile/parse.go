package profile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Limits of a profile that Parse accepts.
const (
	// MaxSize is the most bytes of a profile document.
	MaxSize = 16 << 20
	// MaxEntries is the most entries of a profile.
	MaxEntries = 100_000
)

// ErrInvalid: a profile document is malformed or breaks a limit.
var ErrInvalid = errors.New("invalid boot profile")

// EntryError is what is wrong with one entry of a profile.
type EntryError struct {
	Index int // from 0
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d: %v", e.Index, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Parse reads a profile document from r, streaming, and checks its shape:
// a JSON array of at most MaxEntries objects with exactly the fields of
// Entry, a valid digest, off >= 0, len > 0, at_ms >= 0 and off+len not
// overflowing, in at most MaxSize bytes with nothing after the array.
// Errors wrap ErrInvalid, and name the entry (an *EntryError) when one is
// at fault. It does not know the image: Check holds the entries against it.
func Parse(r io.Reader) ([]Entry, error) {
	lr := &io.LimitedReader{R: r, N: MaxSize + 1}
	dec := json.NewDecoder(bufio.NewReader(lr))
	dec.DisallowUnknownFields()
	invalid := func(err error) error {
		if lr.N <= 0 {
			return fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
		}
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid(fmt.Errorf("not a JSON array of entries: %w", err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, invalid(fmt.Errorf("not a JSON array of entries: it starts with %v", tok))
	}
	var out []Entry
	for i := 0; dec.More(); i++ {
		if i == MaxEntries {
			return nil, invalid(fmt.Errorf("more than %d entries", MaxEntries))
		}
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, invalid(&EntryError{Index: i, Err: err})
		}
		if err := e.validate(); err != nil {
			return nil, invalid(&EntryError{Index: i, Err: err})
		}
		out = append(out, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid(fmt.Errorf("after %d entries: %w", len(out), err))
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more JSON after the array")
		}
		return nil, invalid(fmt.Errorf("after the array: %w", err))
	}
	if lr.N <= 0 {
		return nil, invalid(nil)
	}
	return out, nil
}

// validate checks what an entry must be on its own.
func (e Entry) validate() error {
	if e.Digest == "" {
		return errors.New("no digest")
	}
	if err := e.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", e.Digest, err)
	}
	if e.Off < 0 {
		return fmt.Errorf("off %d: must not be negative", e.Off)
	}
	if e.Len <= 0 {
		return fmt.Errorf("len %d: must be positive", e.Len)
	}
	if e.Off > math.MaxInt64-e.Len {
		return fmt.Errorf("off %d + len %d overflows", e.Off, e.Len)
	}
	if e.AtMs < 0 {
		return fmt.Errorf("at_ms %d: must not be negative", e.AtMs)
	}
	return nil
}
