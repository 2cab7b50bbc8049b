package blobstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/faulty"
)

// TestFaultTokenExpiry puts a token-auth front in front of the real
// registry whose tokens expire after a few uses, or all at once on demand,
// and checks that range reads carry on across expiry: go-containerregistry's
// bearer transport answers each 401 by fetching a new token and re-sending
// the same range GET.
func TestFaultTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 4<<20+7, Options{})
	e.front.RequireToken(3)
	s := e.open(t, e.front.Host(), Options{})
	issued0, _ := e.front.TokenStats()
	if issued0 == 0 {
		t.Fatal("Open did not fetch a token")
	}
	e.front.ResetLog()

	t.Run("expire after 3 uses, sequential", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for range 40 {
			off := r.Int64N(int64(len(e.data)))
			if _, err := e.read(t, s, off, e.upToEnd(off, 1+r.IntN(256<<10)), 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(e.log.String(), "retrying") {
			t.Errorf("401s needed blobstore retries (the transport should refresh by itself):\n%s", e.log)
		}
	})
	t.Run("expired on demand every 250 ms, 8 readers", func(t *testing.T) {
		e.front.RequireToken(0) // valid until expired; invalidates the current ones
		e.log.Reset()
		defer func() {
			// A token refreshed for one request can expire before it is
			// sent: blobstore then tries again (bounded), which is logged.
			t.Logf("blobstore-level retries after a refreshed token was refused: %d", e.log.Count("retrying"))
		}()
		stop := make(chan struct{})
		var expirer sync.WaitGroup
		expirer.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
					e.front.ExpireTokens()
				}
			}
		})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 3))
				for range 40 {
					off := r.Int64N(int64(len(e.data)))
					if _, err := e.read(t, s, off, e.upToEnd(off, 1+r.IntN(256<<10)), 10*time.Second); err != nil {
						t.Errorf("read at %d: %v", off, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		expirer.Wait()
	})

	issued, refused := e.front.TokenStats()
	issued += issued0 // RequireToken reset the count
	// Every 401 on a blob GET is followed by the same GET with a new token.
	rs := e.front.Requests()
	refreshed := 0
	for i, r := range rs {
		if !r.IsBlobGet() || r.Status != http.StatusUnauthorized {
			continue
		}
		for _, later := range rs[i+1:] {
			if later.IsBlobGet() && later.Path == r.Path && later.Range == r.Range && later.Authorization != r.Authorization && later.Status == http.StatusPartialContent {
				refreshed++
				break
			}
		}
	}
	blob401 := 0
	for _, r := range rs {
		if r.IsBlobGet() && r.Status == http.StatusUnauthorized {
			blob401++
		}
	}
	t.Logf("tokens issued: %d, requests refused with 401: %d (blob GETs: %d, each re-sent with a new token and answered 206: %d)", issued-issued0, refused, blob401, refreshed)
	if blob401 < 20 || refreshed != blob401 {
		t.Fatalf("%d blob GETs got 401 and %d were re-sent with a new token and succeeded", blob401, refreshed)
	}
}

// TestFaultRedirect makes the registry front answer blob GETs with 307 to
// another host (storage with pre-signed URLs): the Range header must reach
// it, the registry's Authorization must not, the bytes must be right, and
// a refused (expired) URL must send the client back to the registry for a
// fresh one.
func TestFaultRedirect(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 3<<20+3, Options{})
	e.front.RequireToken(0) // so there is an Authorization to leak
	s := e.open(t, e.front.Host(), Options{})

	for _, hostAddr := range []string{"127.0.0.2:0", "127.0.0.1:0"} {
		t.Run("to "+hostAddr, func(t *testing.T) {
			bh := faulty.NewBlobHost(t, hostAddr, e.reg.Host())
			e.front.Clear()
			e.front.Inject(0, bh.Redirect())
			defer e.front.Clear()
			e.front.ResetLog()

			ranges := [][2]int64{{0, 4096}, {1<<20 + 1, 300_000}, {3<<20 - 10, 13}}
			for _, r := range ranges {
				if _, err := e.read(t, s, r[0], int(r[1]), 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			front, store := e.front.BlobGets(), bh.Requests()
			if len(front) != len(ranges) || len(store) != len(ranges) {
				t.Fatalf("registry saw %d blob GETs, storage %d; want %d each", len(front), len(store), len(ranges))
			}
			for i := range front {
				if !strings.HasPrefix(front[i].Authorization, "Bearer ") {
					t.Errorf("registry GET %d carried no token: %q", i, front[i].Authorization)
				}
				if store[i].Authorization != "" {
					t.Errorf("the registry's Authorization (%q) was sent to the storage host", store[i].Authorization)
				}
				if store[i].Range != front[i].Range || store[i].Range == "" {
					t.Errorf("Range %q at the registry became %q at the storage host", front[i].Range, store[i].Range)
				}
				if front[i].Status != http.StatusTemporaryRedirect || store[i].Status != http.StatusPartialContent {
					t.Errorf("statuses: registry %d, storage %d", front[i].Status, store[i].Status)
				}
			}

			// The pre-signed URL has expired twice: ask the registry again.
			e.front.ResetLog()
			e.log.Reset()
			n0 := len(bh.Requests())
			bh.RefuseNext(2)
			if _, err := e.read(t, s, 777, 100_000, 10*time.Second); err != nil {
				t.Fatalf("read after 2 refused URLs: %v", err)
			}
			var statuses []int
			for _, r := range bh.Requests()[n0:] {
				statuses = append(statuses, r.Status)
			}
			if g := len(e.front.BlobGets()); g != 3 || len(statuses) != 3 || statuses[0] != 403 || statuses[1] != 403 || statuses[2] != 206 {
				t.Fatalf("registry GETs %d, storage answers %v; want 3 and [403 403 206]", g, statuses)
			}
			if strings.Contains(e.log.String(), "sig=") {
				t.Errorf("the log shows a pre-signed URL's signature:\n%s", e.log)
			}

			// A storage that always refuses: give up after a few fresh URLs,
			// well before the deadline, as access denied.
			e.front.ResetLog()
			bh.RefuseNext(1000)
			defer bh.RefuseNext(0)
			took, err := e.read(t, s, 0, 10, 10*time.Second)
			if !errors.Is(err, ErrUnauthorized) || took > 3*time.Second {
				t.Fatalf("after %s: err = %v, want access denied, quickly", took, err)
			}
			if g := len(e.front.BlobGets()); g != maxRedirectRefusals+1 {
				t.Fatalf("asked the registry %d times, want %d", g, maxRedirectRefusals+1)
			}
			t.Logf("storage always refusing: gave up after %s: %v", took.Round(time.Millisecond), err)

			// Whole small blobs (configs) follow redirects too.
			bh.RefuseNext(1)
			b, err := s.Blob(context.Background(), ocispec.Descriptor{Digest: e.desc.Digest, Size: 10})
			if err != nil || len(b) != len(e.data) {
				t.Fatalf("Blob via redirect: %d bytes, %v", len(b), err)
			}
		})
	}
}
