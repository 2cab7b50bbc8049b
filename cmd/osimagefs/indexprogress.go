package main

import (
	"fmt"
	"io"

	"github.com/vbauerster/mpb/v8"

	"github.com/osimagefs/osimagefs/publish"
)

// indexBars draws one bar per layer streamed by index, named by its path
// in the tree. publish.AttachTables never calls it concurrently.
type indexBars struct {
	p    *mpb.Progress
	bar  *liveBar
	name string
	size int64
}

func newIndexBars(w io.Writer) *indexBars { return &indexBars{p: newBars(w)} }

func (b *indexBars) Start(step publish.Step, blob publish.Blob) {
	b.abandon() // a retry starts a fresh bar
	b.name, b.size = fmt.Sprintf("%s %s", step, printable(blob.Path)), blob.Size
	b.bar = addLiveBar(b.p, b.name, len(b.name)+1, blob.Size)
}

func (b *indexBars) Advance(n int64) {
	if b.bar != nil {
		b.bar.add(n)
	}
}

func (b *indexBars) Finish(err error) {
	if b.bar == nil {
		return
	}
	if err == nil {
		b.bar.end(fmt.Sprintf("%s %s streamed", b.name, bytesSize(b.size)), true)
		b.bar = nil
		return
	}
	b.abandon()
}

func (b *indexBars) Exists(publish.Blob) {}

// abandon ends an unfinished bar where it stands.
func (b *indexBars) abandon() {
	if b.bar != nil {
		b.bar.end(fmt.Sprintf("%s %s stopped", b.name, bytesSize(b.size)), false)
		b.bar = nil
	}
}

// close ends an unfinished bar and stops drawing.
func (b *indexBars) close() {
	b.abandon()
	b.p.Wait()
}
