package lazy

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Observer is told what a Fetcher does, for metrics (Options.Observer).
// Its methods run on the data path: they must be quick and never block.
type Observer interface {
	// Lookup is a reader's look for a chunk in one cache tier: memory
	// first, then (on a miss, when there is one) disk.
	Lookup(tier Tier, hit bool)
	// Fetched is called for each chunk fetched from the source, with its
	// byte count.
	Fetched(d digest.Digest, bytes int64)
	// Request is one request to the source for blob d (a range request or
	// a whole-blob stream), once it has ended: how long it took from when
	// it had a request slot, and its error (nil on success).
	Request(d digest.Digest, took time.Duration, err error)
	// Ahead is bytes of blob d sent for fetching before any reader waits
	// for them: by read-ahead (Prefetch) or by a fill (Fill).
	Ahead(d digest.Digest, why AheadKind, bytes int64)
	// VerifyFailed: bytes of blob d failed a check: fetched pieces, a
	// chunk read back from disk, or the blob complete on disk.
	VerifyFailed(d digest.Digest)
}

// Tier is a level of the cache.
type Tier string

// The cache tiers a read looks in.
const (
	TierMemory Tier = "memory"
	TierDisk   Tier = "disk"
)

// AheadKind says why chunks were fetched ahead of readers.
type AheadKind string

// The reasons for fetching ahead.
const (
	AheadReadAhead AheadKind = "readahead" // Blob.Prefetch, for a sequential reader
	AheadFill      AheadKind = "fill"      // Blob.Fill, prefetch of whole layers
)

// silent is the Observer of a Fetcher without one.
type silent struct{}

func (silent) Lookup(Tier, bool)                           {}
func (silent) Fetched(digest.Digest, int64)                {}
func (silent) Request(digest.Digest, time.Duration, error) {}
func (silent) Ahead(digest.Digest, AheadKind, int64)       {}
func (silent) VerifyFailed(digest.Digest)                  {}

// fetched reports a chunk of d fetched from the source.
func (f *Fetcher) fetched(d digest.Digest, n int64) {
	f.opts.Observer.Fetched(d, n)
	if f.opts.OnFetch != nil {
		f.opts.OnFetch(d, n)
	}
}

// runBytes is the byte count of the chunks of runs.
func (b *Blob) runBytes(runs []run) int64 {
	var total int64
	for _, r := range runs {
		for j := range r.flights {
			_, n := chunkRange(r.first+int64(j), b.size, b.f.opts.ChunkSize)
			total += n
		}
	}
	return total
}
