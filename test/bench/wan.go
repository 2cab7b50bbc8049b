package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The WAN emulation: a toxiproxy TCP proxy between the client (the mount,
// or curl) and the registry.
//
// registrytest.Toxi (NewToxiProxyNoTest) can only put toxics on the
// downstream stream (responses), so by default ("-wan-proxy own") the
// benchmark builds the same in-process toxiproxy itself and adds:
//
//   - latency L on the upstream stream (requests, client -> registry),
//   - latency L on the downstream stream (responses),
//   - a link-wide bandwidth limit on the downstream stream.
//
// With "-wan-proxy helper" it uses registrytest.NewToxiProxyNoTest with
// AddLatency (downstream only, so a request/response round trip costs L,
// not 2L) and the same link-wide bandwidth limit.
//
// toxiproxy's own "bandwidth" toxic limits every TCP connection separately:
// a client with 8 connections would get 8 times the bandwidth of curl's one
// and the comparison would say nothing. link_bandwidth (below) paces the
// bytes of all connections of the proxy on one shared clock, like a single
// link of that capacity.

func init() { toxics.Register("link_bandwidth", new(linkBandwidth)) }

// linkBandwidth passes data at Rate KB/s (1 KB = 1000 bytes, as toxiproxy's
// bandwidth toxic) summed over every connection of the proxy. One instance
// is shared by all the connections the toxic applies to.
type linkBandwidth struct {
	Rate int64 `json:"rate"`

	mu   sync.Mutex
	next time.Time // when the link is free again
}

// linkBurst is how far the link clock may lag behind now, so that timer
// overshoot does not cost bandwidth: at most this much data can pass in a
// burst above the rate.
const linkBurst = 5 * time.Millisecond

func (t *linkBandwidth) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if t.Rate > 0 {
				cost := time.Duration(len(c.Data)) * time.Millisecond / time.Duration(t.Rate)
				t.mu.Lock()
				now := time.Now()
				if t.next.Before(now.Add(-linkBurst)) {
					t.next = now.Add(-linkBurst)
				}
				t.next = t.next.Add(cost)
				due := t.next
				t.mu.Unlock()
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-stub.Interrupt:
						stub.Output <- c // never drop data
						return
					}
				}
			}
			stub.Output <- c
		}
	}
}

// wan is a running WAN-emulating proxy.
type wan struct {
	host  string
	desc  string
	close func()
}

// startWAN starts a proxy to upstream ("host:port") with latency each way
// (or downstream only in helper mode) and a link-wide limit of rateKBps.
func startWAN(mode, upstream string, latency time.Duration, rateKBps int64) (*wan, error) {
	return startWANLimit(mode, upstream, latency, rateKBps, false)
}

// startWANLimit is startWAN; with perConn the limit of rateKBps applies to
// each TCP connection separately (toxiproxy's own bandwidth toxic), as on
// a WAN path where every flow gets its share, rather than to the link.
func startWANLimit(mode, upstream string, latency time.Duration, rateKBps int64, perConn bool) (*wan, error) {
	ms := int(latency / time.Millisecond)
	bw := map[string]any{"rate": rateKBps}
	bwType, bwDesc := "link_bandwidth", "summed over all connections (link_bandwidth toxic, one shared clock)"
	if perConn {
		bwType, bwDesc = "bandwidth", "on each connection separately (toxiproxy's bandwidth toxic)"
	}
	switch mode {
	case "own":
		server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
		p := toxiproxy.NewProxy(server, "bench-wan", "127.0.0.1:0", upstream)
		if err := p.Start(); err != nil {
			return nil, err
		}
		p.Lock()
		host := p.Listen
		p.Unlock()
		add := func(name, typ, stream string, attrs map[string]any) error {
			body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1, "attributes": attrs})
			if err != nil {
				return err
			}
			_, err = p.Toxics.AddToxicJson(bytes.NewReader(body))
			return err
		}
		for _, err := range []error{
			add("latency_up", "latency", "upstream", map[string]any{"latency": ms}),
			add("latency_down", "latency", "downstream", map[string]any{"latency": ms}),
			add("bw", bwType, "downstream", bw),
		} {
			if err != nil {
				p.Stop()
				return nil, fmt.Errorf("toxiproxy: %w", err)
			}
		}
		return &wan{host: host, close: p.Stop, desc: fmt.Sprintf(
			"in-process toxiproxy (github.com/Shopify/toxiproxy/v2, built by the benchmark because registrytest.Toxi only toxics the downstream stream): latency %d ms on requests (upstream) and %d ms on responses (downstream), i.e. %d ms per round trip; responses limited to %d KB/s (%.0f MB/s) %s; TCP connects to the proxy are not delayed", ms, ms, 2*ms, rateKBps, float64(rateKBps)/1000, bwDesc)}, nil
	case "helper":
		x, err := registrytest.NewToxiProxyNoTest(upstream)
		if err != nil {
			return nil, err
		}
		x.AddLatency(ms)
		if err := x.AddToxic(bwType, 1, bw); err != nil {
			x.Close()
			return nil, fmt.Errorf("toxiproxy: %w", err)
		}
		return &wan{host: x.Host(), close: x.Close, desc: fmt.Sprintf(
			"registrytest.NewToxiProxyNoTest: latency %d ms on responses only (the helper's toxics are downstream only), i.e. %d ms per round trip; responses limited to %d KB/s (%.0f MB/s) %s; TCP connects to the proxy are not delayed", ms, ms, rateKBps, float64(rateKBps)/1000, bwDesc)}, nil
	default:
		return nil, fmt.Errorf("-wan-proxy %q: want own or helper", mode)
	}
}
