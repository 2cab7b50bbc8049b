// Package nodetest holds what the tests of the format readers under
// contents share: an image in memory or in a file that counts what a reader
// reads of it (Image), finding a path in a node.FS (Find, Lookup), checking
// a directory and a file of a node.FS against a source tree written to disk
// (MatchDir, CheckFile), and reading everything of an FS as a fuzzer's
// check (Touch). The checks peculiar to one format stay in its own tests.
package nodetest
