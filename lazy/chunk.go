package lazy

// span returns the indexes of the first and last chunks that hold the n
// bytes at off (n > 0).
func span(off, n, chunkSize int64) (first, last int64) {
	return off / chunkSize, (off + n - 1) / chunkSize
}

// chunkRange returns the offset and length of chunk i of a blob of size
// bytes: every chunk is chunkSize long but the last, which may be shorter.
func chunkRange(i, size, chunkSize int64) (off, length int64) {
	off = i * chunkSize
	return off, max(0, min(chunkSize, size-off))
}

// numChunks is the number of chunks of a blob of size bytes.
func numChunks(size, chunkSize int64) int64 {
	return (size + chunkSize - 1) / chunkSize
}
