// Package part reads the partition table of a disk image: GPT (with its
// protective or hybrid MBR, the backup header taken when the primary one is
// bad) or MBR (four primary entries and the logical partitions of the
// extended one's EBR chain). It numbers partitions as Linux does and says
// where each one lies; what is inside a partition is for other packages.
package part
