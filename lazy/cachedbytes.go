package lazy

import "github.com/osimagefs/osimagefs/cache"

// CachedBytes is how many bytes of the blob are local, in memory or on
// disk. It reads no chunk and fetches nothing.
func (b *Blob) CachedBytes() int64 {
	var total int64
	for i := range numChunks(b.size, b.f.opts.ChunkSize) {
		if b.f.isCached(cache.Key{Digest: b.digest, Index: i}) {
			_, n := chunkRange(i, b.size, b.f.opts.ChunkSize)
			total += n
		}
	}
	return total
}
