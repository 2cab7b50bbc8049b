package registrytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Toxi is an in-process toxiproxy TCP proxy on 127.0.0.1:<free port> in
// front of an upstream (typically a Registry or a Counter). Toxics act on
// the downstream direction (upstream → client, i.e. responses).
//
// Every change of toxics replaces the proxy with a new one on the same
// address, its toxics set before it accepts a connection: the connections
// open at the time are closed (clients reconnect, and get the new toxics).
// Toxiproxy deadlocks when toxics are changed while a connection it stalls
// is closing (Shopify/toxiproxy#558, a whole test run hung on it), so toxics
// are never changed on a proxy with live connections.
//
// The Add* helpers report errors by failing the test (or panicking for a
// Toxi made by NewToxiProxyNoTest); AddToxic returns them.
type Toxi struct {
	tb       testing.TB
	server   *toxiproxy.ApiServer
	upstream string
	host     string
	seq      atomic.Int64

	mu       sync.Mutex // guards the fields below
	proxy    *toxiproxy.Proxy
	toxics   [][]byte // the JSON of each toxic in force, in order
	disabled bool
	closed   bool
}

// NewToxiProxy starts a toxiproxy forwarding to upstreamHost ("host:port")
// and registers t.Cleanup to stop it.
func NewToxiProxy(t testing.TB, upstreamHost string) *Toxi {
	t.Helper()
	x, err := NewToxiProxyNoTest(upstreamHost)
	if err != nil {
		t.Fatalf("registrytest: toxiproxy: %v", err)
	}
	x.tb = t
	t.Cleanup(x.Close)
	return x
}

// NewToxiProxyNoTest is NewToxiProxy for programs without a testing.TB;
// call Close when done.
func NewToxiProxyNoTest(upstreamHost string) (*Toxi, error) {
	// Prometheus metrics are off unless their collectors are set, and a Nop
	// zerolog logger silences the proxy's per-connection logging.
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	x := &Toxi{server: server, upstream: upstreamHost, host: "127.0.0.1:0"}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.replaceLocked(); err != nil {
		return nil, err
	}
	x.proxy.Lock()
	x.host = x.proxy.Listen // the bound address, set by Start
	x.proxy.Unlock()
	return x, nil
}

// replaceLocked stops the current proxy, if any, and starts a new one on
// the same address with the toxics in force (unless disabled). The old
// proxy's toxics are never touched again.
func (x *Toxi) replaceLocked() error {
	if x.proxy != nil {
		x.proxy.Stop()
	}
	p := toxiproxy.NewProxy(x.server, "registrytest", x.host, x.upstream)
	for _, tx := range x.toxics {
		if _, err := p.Toxics.AddToxicJson(bytes.NewReader(tx)); err != nil {
			return err
		}
	}
	x.proxy = p
	if x.disabled || x.closed {
		return nil
	}
	return p.Start()
}

// Host returns the proxy's "127.0.0.1:PORT"; it survives every change.
func (x *Toxi) Host() string { return x.host }

// AddLatency delays all data sent to the client by ms milliseconds.
func (x *Toxi) AddLatency(ms int) {
	x.helper()
	x.must(x.AddToxic("latency", 1, map[string]any{"latency": ms}))
}

// AddBandwidth limits data sent to the client to kbps kilobytes (not bits)
// per second; this is toxiproxy's "rate".
func (x *Toxi) AddBandwidth(kbps int) {
	x.helper()
	x.must(x.AddToxic("bandwidth", 1, map[string]any{"rate": kbps}))
}

// AddResetPeer makes a fraction toxicity (0..1) of connections get reset
// (TCP RST) as soon as the upstream sends data.
func (x *Toxi) AddResetPeer(toxicity float32) {
	x.helper()
	x.must(x.AddToxic("reset_peer", toxicity, map[string]any{"timeout": 0}))
}

// AddTimeout makes a fraction toxicity (0..1) of connections stop passing
// data to the client and close after ms milliseconds (never if ms is 0).
func (x *Toxi) AddTimeout(ms int, toxicity float32) {
	x.helper()
	x.must(x.AddToxic("timeout", toxicity, map[string]any{"timeout": ms}))
}

// AddSlicer cuts data sent to the client into small writes (about 1 KiB,
// ±512 bytes, 20µs apart), to expose short-read handling.
func (x *Toxi) AddSlicer() {
	x.helper()
	x.must(x.AddToxic("slicer", 1, map[string]any{"average_size": 1024, "size_variation": 512, "delay": 20}))
}

// AddToxic adds a toxic of toxiproxy type typ (latency, bandwidth,
// slow_close, timeout, reset_peer, slicer, limit_data) on the downstream
// stream, applied to a fraction toxicity (0..1) of connections, with
// toxiproxy's attributes for that type. Toxics of the same type stack.
// The connections open at the time are closed (see Toxi).
func (x *Toxi) AddToxic(typ string, toxicity float32, attributes map[string]any) error {
	return x.addToxic("downstream", typ, toxicity, attributes)
}

// AddRequestLatency delays all data sent to the upstream (requests) by ms
// milliseconds; with AddLatency it makes a link slow both ways.
func (x *Toxi) AddRequestLatency(ms int) {
	x.helper()
	x.must(x.addToxic("upstream", "latency", 1, map[string]any{"latency": ms}))
}

// addToxic adds a toxic on stream ("downstream" or "upstream").
func (x *Toxi) addToxic(stream, typ string, toxicity float32, attributes map[string]any) error {
	body, err := json.Marshal(map[string]any{
		"name":       fmt.Sprintf("%s_%d", typ, x.seq.Add(1)),
		"type":       typ,
		"stream":     stream,
		"toxicity":   toxicity,
		"attributes": attributes,
	})
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.toxics = append(x.toxics, body)
	if err := x.replaceLocked(); err != nil {
		x.toxics = x.toxics[:len(x.toxics)-1]
		return err
	}
	return nil
}

// RemoveAll removes every toxic; the connections open at the time are
// closed (see Toxi).
func (x *Toxi) RemoveAll() {
	x.helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.toxics = nil
	x.must(x.replaceLocked())
}

// Disable stops the proxy: its listener and all its connections are closed,
// so connections are refused until Enable. Toxics are kept.
func (x *Toxi) Disable() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.disabled = true
	x.proxy.Stop()
}

// Enable starts a disabled proxy again on the same address.
func (x *Toxi) Enable() {
	x.helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.disabled = false
	x.must(x.replaceLocked())
}

// Close stops the proxy for good.
func (x *Toxi) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	x.proxy.Stop()
}
func (x *Toxi) helper() {
	if x.tb != nil {
		x.tb.Helper()
	}
}

func (x *Toxi) must(err error) {
	x.helper()
	if err == nil {
		return
	}
	if x.tb != nil {
		x.tb.Fatalf("registrytest: toxiproxy: %v", err)
	}
	panic(fmt.Sprintf("registrytest: toxiproxy: %v", err))
}
