package main

import (
	"fmt"
	"os"
	"sync"
)

// cleanups is a stack of teardown steps run in reverse order exactly once,
// on normal exit, on error and on SIGINT/SIGTERM. Each step must bound its
// own running time.
type cleanups struct {
	mu   sync.Mutex
	fns  []cleanup
	done bool
}

type cleanup struct {
	name string
	fn   func() error
}

// add pushes a step; it returns a function that runs the step now (and
// removes it from the stack), for teardown in the middle of the run.
func (c *cleanups) add(name string, fn func() error) func() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var once sync.Once
	var err error
	run := func() error {
		once.Do(func() { err = fn() })
		return err
	}
	c.fns = append(c.fns, cleanup{name, run})
	return run
}

// run runs every step still registered, last first, reporting failures on
// stderr.
func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns, c.done = nil, true
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i].fn(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cleanup %s: %v\n", fns[i].name, err)
		}
	}
}
