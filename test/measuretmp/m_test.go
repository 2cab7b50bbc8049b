package measuretmp

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

func get(t *testing.T, host, repo, dg, rng string) int {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, repo, dg), nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Logf("get: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMeasure(t *testing.T) {
	ctx := context.Background()
	origin := registrytest.Start(t)
	toxi := registrytest.NewToxiProxy(t, origin.Host())
	toxi.AddLatency(20)
	toxi.AddBandwidth(25000)
	counter := registrytest.NewCountingProxy(t, toxi.Host())
	mirror := registrytest.StartMirror(t, counter.Host())
	mk := func() string {
		b := make([]byte, 64<<20)
		rand.Read(b)
		d, err := registrytest.PushBlobBytes(ctx, origin.Host(), "os/x", b, "application/octet-stream")
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}
	watch := func(dg string, dur time.Duration) {
		start := time.Now()
		for time.Since(start) < dur {
			t.Logf("  t=%v origin bytes=%d reqs=%d", time.Since(start).Round(100*time.Millisecond), counter.BytesFor(dg), counter.RequestsFor(dg))
			time.Sleep(500 * time.Millisecond)
		}
	}
	// E1: one probe
	d1 := mk()
	t.Logf("E1 probe: %d", get(t, mirror.Host(), "os/x", d1, "bytes=1048576-1114111"))
	watch(d1, 5*time.Second)
	t.Logf("E1 again: %d", get(t, mirror.Host(), "os/x", d1, "bytes=1048576-1114111"))
	t.Logf("E1 origin bytes %d reqs %d", counter.BytesFor(d1), counter.RequestsFor(d1))
	// E2: 20 concurrent probes
	d2 := mk()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); get(t, mirror.Host(), "os/x", d2, "bytes=1048576-1114111") }()
	}
	wg.Wait()
	watch(d2, 5*time.Second)
	t.Logf("E2 origin bytes %d reqs %d", counter.BytesFor(d2), counter.RequestsFor(d2))
	// E3: one probe, then 5 more spaced during the fill
	d3 := mk()
	get(t, mirror.Host(), "os/x", d3, "bytes=0-65535")
	for i := 0; i < 5; i++ {
		time.Sleep(300 * time.Millisecond)
		t.Logf("E3 probe %d: %d bytes so far %d", i, get(t, mirror.Host(), "os/x", d3, "bytes=1048576-1114111"), counter.BytesFor(d3))
	}
	watch(d3, 4*time.Second)
	t.Logf("E3 origin bytes %d reqs %d", counter.BytesFor(d3), counter.RequestsFor(d3))
	// E4: HEAD on cold
	d4 := mk()
	req, _ := http.NewRequest("HEAD", fmt.Sprintf("http://%s/v2/%s/blobs/%s", mirror.Host(), "os/x", d4), nil)
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	t.Logf("E4 HEAD %d %v", resp.StatusCode, resp.Header)
	watch(d4, 4*time.Second)
	t.Logf("E4 origin bytes %d reqs %d ranges %v", counter.BytesFor(d4), counter.RequestsFor(d4), counter.Ranges(d4))
}
