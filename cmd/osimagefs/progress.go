package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/osimagefs/osimagefs/publish"
)

// Progress on stderr, with github.com/vbauerster/mpb/v8: several bars at
// once (fetch shows one per layer in flight), each with bytes, rate and
// time left. Without a terminal there are no bars: fetch prints a line per
// layer as it completes.

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newBars makes the container of bars drawn on w. A bar that ends is
// replaced by its final line, printed once above the bars still running.
func newBars(w io.Writer) *mpb.Progress {
	return mpb.New(mpb.WithOutput(w), mpb.WithWidth(30), mpb.WithRefreshRate(150*time.Millisecond), mpb.PopCompletedMode())
}

// liveBar is one bar of bytes. It is fed from concurrent callers, timing
// each increment since the one before for the rate and time left, and
// ends as a line of text.
type liveBar struct {
	bar   *mpb.Bar
	final atomic.Pointer[string] // the line that replaces the bar once it ends

	mu   sync.Mutex // guards last
	last time.Time
}

// addLiveBar adds a bar of total bytes named name (padded to width). It
// completes only by end, never by reaching total.
func addLiveBar(p *mpb.Progress, name string, width int, total int64) *liveBar {
	lb := &liveBar{last: time.Now()}
	hide := func(d decor.Decorator) decor.Decorator { return hiddenAtEnd{d} }
	lb.bar = p.AddBar(0, // total 0: no completion until end says so
		mpb.BarFillerClearOnComplete(),
		mpb.BarFillerClearOnAbort(),
		mpb.PrependDecorators(decor.Any(func(s decor.Statistics) string {
			if f := lb.final.Load(); f != nil && (s.Completed || s.Aborted) {
				return *f
			}
			return name
		}, decor.WC{W: width, C: decor.DindentRight})),
		mpb.AppendDecorators(
			hide(decor.CountersKibiByte("% .1f / % .1f", decor.WC{W: 22})),
			hide(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WC{W: 13})),
			hide(decor.Name(" ETA ")),
			hide(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WC{W: 6})),
		),
	)
	lb.bar.SetTotal(total, false)
	return lb
}

// hiddenAtEnd shows its decorator until the bar ends, then nothing, not
// even the decorator's width, so that the final line has the row.
type hiddenAtEnd struct{ decor.Decorator }

func (h hiddenAtEnd) Decor(s decor.Statistics) (string, int) {
	if s.Completed || s.Aborted {
		return "", 0
	}
	return h.Decorator.Decor(s)
}

// Unwrap lets mpb find the moving averages to feed.
func (h hiddenAtEnd) Unwrap() decor.Decorator { return h.Decorator }

func (b *liveBar) add(n int64) {
	b.mu.Lock()
	now := time.Now()
	d := now.Sub(b.last)
	b.last = now
	b.mu.Unlock()
	b.bar.EwmaIncrInt64(n, d)
}

// end replaces the bar with line, as complete (ok) or aborted.
func (b *liveBar) end(line string, ok bool) {
	b.final.Store(&line)
	if ok {
		b.bar.SetTotal(-1, true)
	} else {
		b.bar.Abort(false)
	}
	b.bar.Wait()
}

// layerProgress shows the layers of a fetch. Fetched is called from the
// fetch goroutines, concurrently; the others from the goroutine of each
// layer.
type layerProgress interface {
	Start(l *layerRun)
	Fetched(l *layerRun, n int64)
	Done(l *layerRun)
	Close()
}

// barLayers draws one bar per layer in flight, which becomes a line when
// the layer ends.
type barLayers struct {
	p     *mpb.Progress
	width int

	mu   sync.Mutex // guards bars
	bars map[*layerRun]*liveBar
}

func newBarLayers(w io.Writer, width int) *barLayers {
	return &barLayers{p: newBars(w), width: width, bars: map[*layerRun]*liveBar{}}
}

func (b *barLayers) Start(l *layerRun) {
	bar := addLiveBar(b.p, printable(l.layer.Label()), b.width, l.layer.Size)
	bar.bar.SetCurrent(l.cached) // not part of the rate
	b.mu.Lock()
	b.bars[l] = bar
	b.mu.Unlock()
}

func (b *barLayers) Fetched(l *layerRun, n int64) {
	b.mu.Lock()
	bar := b.bars[l]
	b.mu.Unlock()
	if bar != nil {
		bar.add(n)
	}
}

func (b *barLayers) Done(l *layerRun) {
	b.mu.Lock()
	bar := b.bars[l]
	delete(b.bars, l)
	b.mu.Unlock()
	if bar != nil {
		bar.end(l.line(), l.err == nil)
	}
}

// Close waits for the bars to be drawn for the last time; every layer
// started must be Done.
func (b *barLayers) Close() { b.p.Wait() }

// lineLayers prints a line per layer as it ends.
type lineLayers struct {
	mu sync.Mutex // one line at a time
	w  io.Writer
}

func (p *lineLayers) Start(*layerRun)          {}
func (p *lineLayers) Fetched(*layerRun, int64) {}
func (p *lineLayers) Close()                   {}

func (p *lineLayers) Done(l *layerRun) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, l.line())
}

// pushBars draws one bar per file that push hashes or uploads, or per
// layer that index streams; label names a bar, done says how it ended well.
// publish never calls it concurrently.
type pushBars struct {
	p     *mpb.Progress
	label func(step string, b publish.Blob) string
	done  string
	bar   *liveBar
	name  string // of the bar's file and step
	size  int64
}

func newPushBars(w io.Writer) *pushBars {
	return &pushBars{p: newBars(w), done: "done", label: func(step string, b publish.Blob) string {
		return fmt.Sprintf("%-6s %-13s", step, b.Role.FileName())
	}}
}

// newIndexBars names each bar by the layer's path in the tree.
func newIndexBars(w io.Writer) *pushBars {
	return &pushBars{p: newBars(w), done: "streamed", label: func(step string, b publish.Blob) string {
		return fmt.Sprintf("%s %s", step, printable(b.Path))
	}}
}

func (p *pushBars) Start(step publish.Step, b publish.Blob) {
	p.abandon() // a retry starts a fresh bar
	p.name, p.size = p.label(string(step), b), b.Size
	p.bar = addLiveBar(p.p, p.name, len(p.name)+1, b.Size)
}

func (p *pushBars) Advance(n int64) {
	if p.bar != nil {
		p.bar.add(n)
	}
}

func (p *pushBars) Finish(err error) {
	if p.bar == nil {
		return
	}
	if err == nil {
		p.bar.end(fmt.Sprintf("%s %s %s", p.name, bytesSize(p.size), p.done), true)
		p.bar = nil
		return
	}
	p.abandon()
}

func (p *pushBars) Exists(b publish.Blob) {
	p.abandon()
	name := p.label("skip", b)
	addLiveBar(p.p, name, len(name)+1, 0).end(name+" already in the registry", true)
}

// abandon ends an unfinished bar where it stands.
func (p *pushBars) abandon() {
	if p.bar != nil {
		p.bar.end(fmt.Sprintf("%s %s stopped", p.name, bytesSize(p.size)), false)
		p.bar = nil
	}
}

// close ends an unfinished bar and stops drawing.
func (p *pushBars) close() {
	p.abandon()
	p.p.Wait()
}

// switchWriter is a writer whose target changes: logs go above the bars
// while they are drawn, and straight to stderr otherwise.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}
