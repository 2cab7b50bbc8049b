package blobstore

import (
	"context"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestFaultTransientRetried injects each kind of transient HTTP failure
// into the first GETs of a read, between the client and a real registry,
// and checks that the read retries past them and returns the right bytes.
func TestFaultTransientRetried(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 4<<20+123, Options{})
	const off, n = 1<<20 + 17, 300_000
	tests := []struct {
		name    string
		fault   faulty.Fault
		times   int
		timeout time.Duration
		within  time.Duration // the read must succeed this fast
	}{
		{"500", faulty.Status(http.StatusInternalServerError), 3, 10 * time.Second, 5 * time.Second},
		{"502", faulty.Status(http.StatusBadGateway), 2, 10 * time.Second, 5 * time.Second},
		{"503", faulty.Status(http.StatusServiceUnavailable), 3, 10 * time.Second, 5 * time.Second},
		{"504", faulty.Status(http.StatusGatewayTimeout), 1, 10 * time.Second, 5 * time.Second},
		{"429 without Retry-After", faulty.Status(http.StatusTooManyRequests), 2, 10 * time.Second, 5 * time.Second},
		{"connection reset", faulty.Reset(), 3, 10 * time.Second, 5 * time.Second},
		{"body cut short (Content-Length)", faulty.CutBody(1000), 2, 10 * time.Second, 5 * time.Second},
		{"body cut short (chunked)", faulty.ShortChunked(4096), 2, 10 * time.Second, 5 * time.Second},
		{"Content-Range for other bytes (+1)", faulty.ShiftRange(1), 2, 10 * time.Second, 5 * time.Second},
		{"Content-Range for other bytes (-4096)", faulty.ShiftRange(-4096), 1, 10 * time.Second, 5 * time.Second},
		{"lying Content-Range", faulty.LieContentRange(), 2, 10 * time.Second, 5 * time.Second},
		{"body longer than the range", faulty.LongBody(100, false), 2, 10 * time.Second, 5 * time.Second},
		{"body longer than the range (chunked)", faulty.LongBody(1, true), 2, 10 * time.Second, 5 * time.Second},
		// A stalled attempt is abandoned after a third of the time left.
		{"stalled body", faulty.Stall(64 << 10), 1, 3 * time.Second, 2500 * time.Millisecond},
		{"stalled headers", faulty.StallHeaders(), 1, 3 * time.Second, 2500 * time.Millisecond},
		{"stalled twice", faulty.Stall(1), 2, 6 * time.Second, 5500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.front.ResetLog()
			e.log.Reset()
			e.front.Inject(tc.times, tc.fault)
			defer e.front.Clear()
			took, err := e.read(t, e.store, off, n, tc.timeout)
			if err != nil {
				t.Fatalf("read failed after %s: %v", took, err)
			}
			g := gets(e.front.Requests())
			if len(g) != tc.times+1 || g[len(g)-1] != "forwarded -> 206" {
				t.Fatalf("blob GETs: %q, want %d faulted then one forwarded", g, tc.times)
			}
			// net/http itself retries a GET whose reused connection was
			// reset before any answer, so fewer retries may be ours.
			if r := e.log.Count("retrying"); r != tc.times && !(tc.name == "connection reset" && r >= 1 && r < tc.times) {
				t.Errorf("%d retries logged, want %d", r, tc.times)
			}
			if took > tc.within {
				t.Errorf("took %s, want at most %s", took, tc.within)
			}
			t.Logf("%d faults, read in %s: %q", tc.times, took.Round(time.Millisecond), g)
		})
	}
}

// TestFaultConnectionRefused stops the registry (connections refused) and
// restarts it while a read is retrying.
func TestFaultConnectionRefused(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 2<<20, Options{})
	s := e.open(t, e.reg.Host(), Options{})
	e.reg.Stop()
	const down = 800 * time.Millisecond
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(down)
		restarted <- e.reg.RestartNoTest(context.Background())
	}()
	took, err := e.read(t, s, 12345, 100_000, 10*time.Second)
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("read failed after %s: %v", took, err)
	}
	if took < down {
		t.Fatalf("read succeeded after %s, before the registry was back", took)
	}
	if e.log.Count("connection refused") == 0 {
		t.Errorf("no refused attempt logged:\n%s", e.log)
	}
	t.Logf("read in %s after %d refused attempts", took.Round(time.Millisecond), e.log.Count("retrying"))
}

// TestFaultRetryAfter checks that a 429 or 503 with Retry-After is retried
// after the wait asked for, not sooner, and that a wait beyond the deadline
// fails at once instead of sleeping into it.
func TestFaultRetryAfter(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 1<<20, Options{})
	tests := []struct {
		name  string
		fault faulty.Fault
		wait  time.Duration
	}{
		{"429 Retry-After: 1", faulty.Status(http.StatusTooManyRequests, "Retry-After", "1"), time.Second},
		{"503 Retry-After: 2", faulty.Status(http.StatusServiceUnavailable, "Retry-After", "2"), 2 * time.Second},
		// An HTTP date has a resolution of a second: at least one more second.
		{"429 Retry-After: <date in 2 s>", faulty.Fault{}, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.front.ResetLog()
			f := tc.fault
			if f.Serve == nil {
				f = faulty.Status(http.StatusTooManyRequests, "Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			}
			e.front.Inject(1, f)
			took, err := e.read(t, e.store, 100, 4096, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rs := e.front.BlobGets()
			if len(rs) != 2 {
				t.Fatalf("blob GETs: %q", gets(rs))
			}
			gap := rs[1].Time.Sub(rs[0].Time)
			// Never sooner than asked; the upper bound allows for a loaded machine.
			if gap < tc.wait || gap > tc.wait+3*time.Second {
				t.Fatalf("retried %s after the 429/503, want %s (+ date rounding)", gap, tc.wait)
			}
			t.Logf("asked to wait %s: retried after %s, read in %s", tc.wait, gap.Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
	t.Run("Retry-After beyond the deadline fails at once", func(t *testing.T) {
		e.front.ResetLog()
		e.front.Inject(0, faulty.Status(http.StatusTooManyRequests, "Retry-After", "30"))
		defer e.front.Clear()
		took, err := e.read(t, e.store, 100, 4096, 2*time.Second)
		var se *StatusError
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) || se.Code != http.StatusTooManyRequests {
			t.Fatalf("err = %v, want a deadline error carrying the 429", err)
		}
		if took > 300*time.Millisecond {
			t.Fatalf("took %s to give up, want at once", took)
		}
		if g := gets(e.front.Requests()); len(g) != 1 {
			t.Fatalf("blob GETs %q, want 1", g)
		}
		t.Logf("gave up after %s: %v", took.Round(time.Millisecond), err)
	})
}

// TestBackoffJitter checks the waits between attempts: full jitter under
// an exponential ceiling (50 ms << attempt, capped by MaxBackoff).
func TestBackoffJitter(t *testing.T) {
	t.Parallel()
	s := &Store{}
	for attempt := 1; attempt <= 8; attempt++ {
		ceiling := min(2*time.Second, 50*time.Millisecond<<attempt)
		const samples = 4000
		var sum float64
		lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
		for range samples {
			w := s.backoff(attempt, errors.New("x"))
			if w <= 0 || w > ceiling {
				t.Fatalf("attempt %d: wait %s outside (0, %s]", attempt, w, ceiling)
			}
			sum += float64(w)
			lo, hi = min(lo, w), max(hi, w)
		}
		mean := time.Duration(sum / samples)
		if mean < ceiling*45/100 || mean > ceiling*55/100 || lo > ceiling/20 || hi < ceiling*95/100 {
			t.Fatalf("attempt %d: waits in [%s, %s], mean %s: not uniform over (0, %s]", attempt, lo, hi, mean, ceiling)
		}
		t.Logf("attempt %d: ceiling %s, waits %s..%s, mean %s", attempt, ceiling, lo, hi, mean)
	}
	if w := s.backoff(1, &StatusError{Code: 429, RetryAfter: 3 * time.Second}); w != 3*time.Second {
		t.Fatalf("Retry-After 3s gave wait %s", w)
	}
	if w := (&Store{opts: Options{MaxBackoff: 80 * time.Millisecond}}).backoff(10, errors.New("x")); w > 80*time.Millisecond {
		t.Fatalf("MaxBackoff 80ms gave wait %s", w)
	}
}

// TestFaultBackoffMeasured checks the waits between attempts against a
// real registry answering 503: each wait chosen (from the debug log) is
// below its exponential ceiling, the next GET really comes after it, and
// the waits differ from one read to the next (jitter).
func TestFaultBackoffMeasured(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 1<<20, Options{})
	const failures = 5
	waitRE := regexp.MustCompile(`attempt=(\d+) wait=(\S+)`)
	var runs [][]time.Duration
	for range 4 {
		e.front.ResetLog()
		e.log.Reset()
		e.front.Inject(failures, faulty.Status(http.StatusServiceUnavailable))
		if _, err := e.read(t, e.store, 0, 1000, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		rs := e.front.BlobGets()
		ms := waitRE.FindAllStringSubmatch(e.log.String(), -1)
		if len(rs) != failures+1 || len(ms) != failures {
			t.Fatalf("blob GETs %q, %d waits logged", gets(rs), len(ms))
		}
		var waits, gaps []time.Duration
		for i, m := range ms {
			attempt, _ := strconv.Atoi(m[1])
			wait, err := time.ParseDuration(m[2])
			if err != nil || attempt != i+1 {
				t.Fatalf("log line %q", m[0])
			}
			ceiling := 50 * time.Millisecond << attempt
			if wait <= 0 || wait > ceiling {
				t.Errorf("wait before attempt %d: %s, outside (0, %s]", attempt+1, wait, ceiling)
			}
			gap := rs[i+1].Time.Sub(rs[i].Time)
			if gap < wait || gap > wait+2*time.Second {
				t.Errorf("attempt %d came %s after the previous one, chosen wait %s", attempt+1, gap, wait)
			}
			waits = append(waits, wait.Round(100*time.Microsecond))
			gaps = append(gaps, gap.Round(100*time.Microsecond))
		}
		runs = append(runs, waits)
		t.Logf("waits chosen: %v; measured between GETs: %v", waits, gaps)
	}
	same := true
	for _, r := range runs[1:] {
		for i := range r {
			if r[i] != runs[0][i] {
				same = false
			}
		}
	}
	if same {
		t.Fatal("every read waited the same: no jitter")
	}
}

// TestFaultToxiproxy injects TCP-level faults with toxiproxy between the
// client and a real registry: resets, a stall (data stops), latency with
// slicing.
func TestFaultToxiproxy(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 3<<20+5, Options{})
	toxi := registrytest.NewToxiProxy(t, e.reg.Host())
	s := e.open(t, toxi.Host(), Options{})

	t.Run("reset peer", func(t *testing.T) {
		e.log.Reset()
		toxi.AddResetPeer(1)
		time.AfterFunc(400*time.Millisecond, toxi.RemoveAll)
		took, err := e.read(t, s, 1<<20, 512<<10, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e.log.Count("connection reset") == 0 && e.log.Count("EOF") == 0 {
			t.Fatalf("no reset seen:\n%s", e.log)
		}
		t.Logf("read in %s after %d retries", took.Round(time.Millisecond), e.log.Count("retrying"))
	})
	t.Run("stalled connection", func(t *testing.T) {
		e.log.Reset()
		toxi.AddTimeout(0, 1) // no data passes, the connection stays open
		time.AfterFunc(2*time.Second, toxi.RemoveAll)
		took, err := e.read(t, s, 5, 2<<20, 4500*time.Millisecond)
		if err != nil {
			t.Fatalf("read failed after %s: %v\n%s", took, err, e.log)
		}
		if e.log.Count("registry stopped sending") == 0 {
			t.Fatalf("no stalled attempt abandoned:\n%s", e.log)
		}
		t.Logf("read in %s; %d stalled attempts abandoned", took.Round(time.Millisecond), e.log.Count("registry stopped sending"))
	})
	t.Run("latency and slicing", func(t *testing.T) {
		e.log.Reset()
		toxi.AddLatency(150)
		toxi.AddSlicer()
		defer toxi.RemoveAll()
		for _, r := range [][2]int64{{0, 1}, {4095, 4097}, {1 << 20, 1 << 20}, {3 << 20, 5}} {
			if _, err := e.read(t, s, r[0], int(r[1]), 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if r := e.log.Count("retrying"); r != 0 {
			t.Errorf("%d retries under mere latency and slicing:\n%s", r, e.log)
		}
	})
}

// TestFaultReadDeadline makes every attempt fail in each way and checks
// that ReadParts returns an error (never bytes) at its deadline, never later.
// It reports the worst overshoot.
func TestFaultReadDeadline(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 2<<20, Options{})
	toxi := registrytest.NewToxiProxy(t, e.reg.Host())
	viaToxi := e.open(t, toxi.Host(), Options{})
	stopped := registrytest.Start(t)
	if _, err := registrytest.PushBlobBytes(context.Background(), stopped.Host(), faultRepo, e.data, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	refused := e.open(t, stopped.Host(), Options{})
	stopped.Stop()

	type fault struct {
		name  string
		store *Store
		setup func()
	}
	inject := func(f faulty.Fault) func() { return func() { e.front.Inject(0, f) } }
	faults := []fault{
		{"connection refused", refused, func() {}},
		{"503", e.store, inject(faulty.Status(http.StatusServiceUnavailable))},
		{"429 Retry-After: 1", e.store, inject(faulty.Status(http.StatusTooManyRequests, "Retry-After", "1"))},
		{"reset", e.store, inject(faulty.Reset())},
		{"body cut short", e.store, inject(faulty.CutBody(1000))},
		{"stalled body", e.store, inject(faulty.Stall(1000))},
		{"stalled headers", e.store, inject(faulty.StallHeaders())},
		{"wrong Content-Range", e.store, inject(faulty.ShiftRange(1))},
		{"TCP stall (toxiproxy timeout)", viaToxi, func() { toxi.AddTimeout(0, 1) }},
		{"latency 4 s (toxiproxy)", viaToxi, func() { toxi.AddLatency(4_000) }},
	}
	deadlines := []time.Duration{300 * time.Millisecond, 1 * time.Second, 2500 * time.Millisecond}
	const slack = 250 * time.Millisecond
	var worst time.Duration
	worstName := ""
	for fi, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.setup()
			defer e.front.Clear()
			defer toxi.RemoveAll()
			type result struct {
				took time.Duration
				err  error
			}
			results := make([]result, len(deadlines))
			done := make(chan int)
			for i, d := range deadlines {
				go func() {
					// A range of its own: a range that just failed gets one attempt.
					took, err := e.read(t, f.store, int64(fi*len(deadlines)+i)*64<<10, 64<<10, d)
					results[i] = result{took, err}
					done <- i
				}()
			}
			for range deadlines {
				<-done
			}
			var line []string
			for i, d := range deadlines {
				r := results[i]
				if r.err == nil {
					t.Fatalf("deadline %s: read succeeded", d)
				}
				over := r.took - d
				if over > slack {
					t.Errorf("deadline %s: returned after %s, %s late: %v", d, r.took, over, r.err)
				}
				if over > worst {
					worst, worstName = over, f.name
				}
				line = append(line, d.String()+": "+r.took.Round(time.Millisecond).String())
			}
			t.Logf("failed after %s; last error: %v", strings.Join(line, ", "), results[len(results)-1].err)
		})
	}
	t.Logf("worst overshoot past the deadline: %s (%s)", worst.Round(time.Millisecond), worstName)
}

// TestFaultRecentlyFailedRange: a range whose read just failed at its
// deadline gets a single attempt when it or a part of it is asked again at
// once (as the kernel does after a failed read-ahead), so the second reader
// does not wait a second deadline; other ranges, and the same range later,
// get the full retry treatment, and a success forgets the failure.
func TestFaultRecentlyFailedRange(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 1<<20, Options{})
	e.front.Inject(0, faulty.Status(http.StatusServiceUnavailable))
	const timeout = 1500 * time.Millisecond
	if took, err := e.read(t, e.store, 0, 4096, timeout); !errors.Is(err, context.DeadlineExceeded) || len(e.front.BlobGets()) < 2 {
		t.Fatalf("first read: %v after %s and %d GETs, want retries until the deadline", err, took, len(e.front.BlobGets()))
	}
	e.front.ResetLog()
	took, err := e.read(t, e.store, 0, 4096, timeout)
	if err == nil || took > 300*time.Millisecond || len(e.front.BlobGets()) != 1 {
		t.Fatalf("same range again: %v after %s and %d GETs, want one attempt and a quick failure", err, took, len(e.front.BlobGets()))
	}
	t.Logf("same range again at once: failed after %s, one GET: %v", took.Round(time.Millisecond), err)
	e.front.ResetLog()
	// A part of it (one chunk of a failed multi-chunk run, one page).
	if took, err := e.read(t, e.store, 100, 200, timeout); err == nil || took > 300*time.Millisecond || len(e.front.BlobGets()) != 1 {
		t.Fatalf("part of the range: %v after %s and %d GETs, want one attempt and a quick failure", err, took, len(e.front.BlobGets()))
	}
	e.front.ResetLog()
	if took, err := e.read(t, e.store, 4096, 4096, timeout); !errors.Is(err, context.DeadlineExceeded) || len(e.front.BlobGets()) < 2 {
		t.Fatalf("another range: %v after %s, %d GETs; want retries until the deadline", err, took, len(e.front.BlobGets()))
	}
	e.front.Clear()
	if _, err := e.read(t, e.store, 0, 4096, timeout); err != nil {
		t.Fatalf("the one attempt after the fault cleared: %v", err)
	}
	if _, ok := e.store.failed.recent(e.desc.Digest, 0, 4096); ok {
		t.Fatal("a successful read did not forget the failure")
	}
	e.front.Inject(0, faulty.Status(http.StatusServiceUnavailable))
	defer e.front.Clear()
	if _, err := e.read(t, e.store, 4096, 4096, timeout); err == nil {
		t.Fatal("read succeeded through 503s")
	}
	time.Sleep(recentFailure)
	e.front.ResetLog()
	if took, err := e.read(t, e.store, 4096, 4096, timeout); err == nil || len(e.front.BlobGets()) < 2 {
		t.Fatalf("the same range %s later: %v after %s, %d GETs; want retries again", recentFailure, err, took, len(e.front.BlobGets()))
	}

	// With every connection stalling, the one quick attempt is abandoned
	// after quickStallTimeout, not a third of the deadline.
	e.front.Clear()
	e.front.Inject(0, faulty.StallHeaders())
	if _, err := e.read(t, e.store, 8192, 4096, 3*time.Second); err == nil {
		t.Fatal("read succeeded through stalls")
	}
	took, err = e.read(t, e.store, 8192, 4096, 3*time.Second)
	if err == nil || took < quickStallTimeout || took > quickStallTimeout+300*time.Millisecond {
		t.Fatalf("stalled range again: %v after %s, want a failure after %s", err, took, quickStallTimeout)
	}
	t.Logf("stalled range again at once: failed after %s", took.Round(time.Millisecond))
}
