package lazy

import (
	"context"
	"testing"
	"time"
)

// granted tells whether a waiter got its slot within 5 s.
func granted(ch <-chan func()) (func(), bool) { return grantedWithin(ch, 5*time.Second) }

// notGranted tells whether a waiter is still waiting after 200 ms.
func notGranted(ch <-chan func()) bool {
	_, ok := grantedWithin(ch, 200*time.Millisecond)
	return !ok
}

func grantedWithin(ch <-chan func(), d time.Duration) (func(), bool) {
	select {
	case r := <-ch:
		return r, true
	case <-time.After(d):
		return nil, false
	}
}

// acquireAsync asks for a slot in the background.
func acquireAsync(t *testing.T, s *slots, ctx context.Context, demand bool, hurry <-chan struct{}) <-chan func() {
	t.Helper()
	ch := make(chan func(), 1)
	go func() {
		r, err := s.acquire(ctx, demand, hurry)
		if err == nil {
			ch <- r
		}
	}()
	return ch
}

func TestSlots(t *testing.T) {
	ctx := context.Background()
	t.Run("background never takes the reserved slot", func(t *testing.T) {
		s := newSlots(3)
		for range 2 {
			if _, ok := granted(acquireAsync(t, s, ctx, false, nil)); !ok {
				t.Fatal("a background fetch waited with free slots")
			}
		}
		if !notGranted(acquireAsync(t, s, ctx, false, nil)) {
			t.Fatal("a background fetch took the slot reserved for demand")
		}
		if _, ok := granted(acquireAsync(t, s, ctx, true, nil)); !ok {
			t.Fatal("a demand fetch waited while only background fetches held slots")
		}
	})
	t.Run("waiting demand goes first", func(t *testing.T) {
		s := newSlots(2)
		held, _ := granted(acquireAsync(t, s, ctx, true, nil))
		held2, _ := granted(acquireAsync(t, s, ctx, true, nil))
		bg := acquireAsync(t, s, ctx, false, nil)
		time.Sleep(20 * time.Millisecond) // queued first
		dem := acquireAsync(t, s, ctx, true, nil)
		time.Sleep(20 * time.Millisecond)
		held()
		if _, ok := granted(dem); !ok {
			t.Fatal("the freed slot did not go to the waiting demand fetch")
		}
		held2()
		if _, ok := granted(bg); !ok {
			t.Fatal("the background fetch did not get the next free slot")
		}
	})
	t.Run("hurry promotes a waiting background fetch", func(t *testing.T) {
		s := newSlots(2)
		if _, ok := granted(acquireAsync(t, s, ctx, false, nil)); !ok {
			t.Fatal("first background fetch waited")
		}
		h := newHurry()
		bg := acquireAsync(t, s, ctx, false, h.channel())
		if !notGranted(bg) {
			t.Fatal("a second background fetch took the reserved slot")
		}
		h.up()
		if _, ok := granted(bg); !ok {
			t.Fatal("a promoted fetch did not take the free slot")
		}
	})
	t.Run("a waiter that gives up leaves the queue", func(t *testing.T) {
		s := newSlots(1)
		release, _ := granted(acquireAsync(t, s, ctx, true, nil))
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := s.acquire(cctx, true, nil); errc <- err }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-errc; err == nil {
			t.Fatal("a cancelled wait for a slot succeeded")
		}
		release()
		if _, ok := granted(acquireAsync(t, s, ctx, true, nil)); !ok {
			t.Fatal("the slot was lost to a waiter that had given up")
		}
	})
}
