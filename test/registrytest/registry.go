package registrytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
)

// Registry is a real CNCF Distribution registry served in-process over plain
// HTTP on 127.0.0.1, with filesystem storage, no auth and deletes enabled.
//
// It runs Distribution's http.Handler (handlers.App) on its own http.Server
// and listener rather than through registry.NewRegistry, so that it can be
// stopped and restarted on the same address (see Stop and Restart).
type Registry struct {
	dir       string
	addr      string
	secret    string
	removeDir bool
	baseCtx   context.Context

	mu     sync.Mutex
	srv    *http.Server
	app    *handlers.App
	served chan struct{} // closed when srv.Serve returns
	closed bool
}

// Start starts a registry whose storage is rooted in t.TempDir(), waits until
// GET /v2/ answers 200 and registers t.Cleanup to shut it down.
func Start(t testing.TB) *Registry {
	t.Helper()
	r, err := StartNoTest(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("registrytest: start registry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// StartNoTest is Start for programs without a testing.TB (demos,
// benchmarks). ctx only bounds start-up; the registry keeps running until
// Close. Storage is rooted in dir; if dir is empty a temporary directory is
// created and removed by Close.
func StartNoTest(ctx context.Context, dir string) (*Registry, error) {
	quietLogging()

	removeDir := false
	if dir == "" {
		d, err := os.MkdirTemp("", "registrytest-")
		if err != nil {
			return nil, err
		}
		dir, removeDir = d, true
	}
	ln, err := listenFree()
	if err != nil {
		if removeDir {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	r := &Registry{
		dir:       dir,
		addr:      ln.Addr().String(),
		secret:    randomSecret(),
		removeDir: removeDir,
		baseCtx:   context.WithoutCancel(ctx),
	}
	r.mu.Lock()
	err = r.serveLocked(ctx, ln)
	r.mu.Unlock()
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// Host returns "127.0.0.1:PORT". It does not change across Restart.
func (r *Registry) Host() string { return r.addr }

// Dir returns the root directory of the registry's filesystem storage.
func (r *Registry) Dir() string { return r.dir }

// Stop stops serving, like a crashed or killed registry process: the
// listener and every open connection (including in-flight responses) are
// closed, so later connection attempts are refused. Storage is kept. Stop is
// a no-op on a stopped registry.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

// Restart serves again on the same address with the same storage, as a
// freshly started registry process would (new in-memory caches). It stops
// the registry first if it is running, and waits until it is ready.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	if err := r.RestartNoTest(context.Background()); err != nil {
		t.Fatalf("registrytest: restart registry: %v", err)
	}
}

// RestartNoTest is Restart for programs without a testing.TB.
func (r *Registry) RestartNoTest(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("registry is closed")
	}
	r.stopLocked()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ln, err := listenAgain(lctx, r.addr)
	if err != nil {
		return err
	}
	return r.serveLocked(ctx, ln)
}

// Close stops the registry for good and removes its storage directory if
// StartNoTest created it. Start registers Close with t.Cleanup.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.removeDir {
		return os.RemoveAll(r.dir)
	}
	return nil
}

// serveLocked builds a new Distribution App and serves it on ln.
func (r *Registry) serveLocked(ctx context.Context, ln net.Listener) error {
	app, err := newApp(r.baseCtx, newConfig(r.dir, r.addr, r.secret))
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	r.srv, r.app, r.served = srv, app, served
	if err := waitReady(ctx, r.addr); err != nil {
		r.stopLocked()
		return err
	}
	return nil
}

func (r *Registry) stopLocked() {
	if r.srv == nil {
		return
	}
	_ = r.srv.Close() // closes the listener and all connections
	<-r.served
	_ = r.app.Shutdown() // cancels the App's context
	r.srv, r.app, r.served = nil, nil, nil
}

// newApp wraps handlers.NewApp, which reports configuration and storage
// driver errors by panicking.
func newApp(ctx context.Context, cfg *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("distribution NewApp: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}
