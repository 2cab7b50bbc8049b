package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/source"
)

// mountFlags are the flags of the mount command.
type mountFlags struct {
	remote      remoteFlags
	chunkSize   sizeFlag
	memoryCache sizeFlag
	parallel    int
	readTimeout time.Duration
	allowOther  bool
	fuseDebug   bool
	cacheDir    string
	cacheSize   sizeFlag
	readAhead   sizeFlag
	prefetch    string
	metricsAddr string
	verify      string
	record      string
	passthrough bool
	contents    bool
	contentsMem sizeFlag
	host        hostFlags
}

func newMountCmd(g *globalFlags) *cobra.Command {
	f := &mountFlags{chunkSize: lazy.DefaultChunkSize, cacheSize: 10 << 30, readAhead: osfs.DefaultReadAhead, contentsMem: blockcache.DefaultBytes}
	c := &cobra.Command{
		Use:   "mount [flags] REFERENCE MOUNTPOINT",
		Short: "Mount an OS image read-only and serve it until unmounted",
		Long: `mount resolves REFERENCE once (a tag is pinned to the digest it points to
for the life of the mount), shows the image at MOUNTPOINT and serves it in
the foreground until the mount point is unmounted (umount MOUNTPOINT) or the
process gets SIGINT (Ctrl-C) or SIGTERM, which unmount cleanly.

Only the index, manifests and configs are fetched at mount time. Reading a
layer file fetches the chunks (--chunk-size) that hold the bytes read, once,
through an in-memory LRU (--memory-cache) and a persistent disk cache
(--cache-dir, --cache-size) shared by every mount and fetch that uses the
same directory at the same time: a chunk one of them fetched is read from
disk by the others, and --cache-size bounds them all together. Every byte is checked before a reader gets
it (--verify auto): by the sha256 of its piece where the image has chunk
tables (osimagefs push writes them; osimagefs index adds them to an image
pushed by another tool), else the blob is checked against its digest once
complete in the disk cache. Bytes that fail are fetched once more, then
the read fails with EIO.
Mirrors and pull-through caches named in containerd's registry host
configuration (--hosts-dir, /etc/containerd/certs.d when it exists) are
read before the registry, by digest; a mirror that fails, or is still
filling a blob, is passed over for the next host, and the registry last.
Sequential readers get read-ahead (up to --read-ahead); the boot files (kernel,
initramfs, cmdline) are prefetched right after mounting (--prefetch), or,
where the image has a boot profile (osimagefs profile), the ranges a boot
read, in the order it read them (--prefetch auto, the default). --record
FILE writes such a profile of this mount's reads at unmount.

Tree: MOUNTPOINT/<arch>/<variant>/{disk.img, kernel, initramfs,
root.squashfs, cmdline, uki.efi, image.iso, manifest.json, config.json},
and MOUNTPOINT/index.json when REFERENCE is an index.

` + referenceHelp + `

Every flag is also a mount option: -o plain-http,cache-size=20GiB (a
boolean as a bare name, allow_other for --allow-other). Installed as
/sbin/mount.fuse.osimagefs (make install), osimagefs is started by
mount -t fuse.osimagefs and by fstab entries of type fuse.osimagefs; it
then returns once the tree is served, or fails with the reason and the
exit status below, and serves in the background. --background does the
same for osimagefs mount. In the background the log goes to syslog (the
journal) or to --log-file. Under systemd (Type=notify) readiness is
signalled with sd_notify.`,
		Example: `  # mount, browse, unmount
  osimagefs mount localhost:5000/os/gardenlinux:1.0 /mnt/os &
  ls -lR /mnt/os
  dd if=/mnt/os/amd64/virtualization/disk.img bs=4k skip=100000 count=1 | xxd | head
  umount /mnt/os

  # only the arm64 image, with a larger memory cache, visible to all users
  osimagefs mount --platform linux/arm64 --memory-cache 1GiB --allow-other \
      registry.example.com/os/debian@sha256:... /srv/os

  # record what a boot reads, then share it: later mounts fetch it ahead
  osimagefs mount --record boot.json registry.example.com/os/debian:13 /srv/os &
  qemu-system-x86_64 ... -kernel /srv/os/amd64/virtualization/kernel ...   # boot, shut down
  umount /srv/os && osimagefs profile push registry.example.com/os/debian:13 boot.json

  # an OCI image layout (oras push --oci-layout, skopeo copy ... oci:DIR:TAG)
  osimagefs mount oci:/srv/layouts/debian:13 /srv/os

  # in the background once served, as mount(8) and fstab start it
  osimagefs mount --background --log-file /var/log/osimagefs.log REF /srv/os
  mount -t fuse.osimagefs registry.example.com/os/debian:13 /srv/os -o cache-size=20GiB,allow_other
  # /etc/fstab:
  # registry.example.com/os/debian:13  /srv/os  fuse.osimagefs  ro,_netdev,allow_other  0 0`,
		Args: exactArgs(2, "REFERENCE and MOUNTPOINT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if done, err := f.host.start(cmd); done || err != nil {
				return err // -o refused, or the mount is up in the background
			}
			return runMount(cmd.Context(), g, f, args[0], args[1])
		},
	}
	fl := c.Flags()
	f.remote.register(fl)
	fl.Var(&f.chunkSize, "chunk-size", "unit of fetching and caching, 4KiB to 64MiB: a random read fetches one chunk, a sequential one runs of them")
	fl.Var(&f.memoryCache, "memory-cache", "memory for chunks: those in flight and an LRU of recent ones (default 64MiB with a disk cache, whose files the kernel keeps in its page cache; 256MiB with --cache-dir=none)")
	fl.IntVar(&f.parallel, "parallel", lazy.DefaultParallel, "most range requests in flight to the registry (each of at most 4MiB); reads that wait go first, and read-ahead and prefetch leave one free (none with 1)")
	fl.DurationVar(&f.readTimeout, "read-timeout", 60*time.Second, "a read that cannot be served in this time fails with EIO")
	fl.BoolVar(&f.allowOther, "allow-other", false, "let other users read the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	fl.BoolVar(&f.fuseDebug, "fuse-debug", false, "log every FUSE request (very verbose)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", cacheDirHelp)
	fl.Var(&f.cacheSize, "cache-size", "most bytes the disk cache holds (least recently used goes first)")
	fl.Var(&f.readAhead, "read-ahead", "largest window fetched ahead of a sequential reader; it opens once a stream has read 1MiB in order and grows with what it has read (0 disables)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", metricsAddrHelp)
	registerVerify(fl, &f.verify)
	fl.StringVar(&f.prefetch, "prefetch", "auto", prefetchHelp)
	fl.StringVar(&f.record, "record", "", recordHelp)
	fl.BoolVar(&f.passthrough, "passthrough", true, passthroughHelp)
	fl.BoolVar(&f.contents, "contents", true, contentsHelp)
	fl.Var(&f.contentsMem, "contents-cache", contentsCacheHelp)
	f.host.register(fl)
	return c
}

func runMount(ctx context.Context, g *globalFlags, f *mountFlags, refArg, dir string) error {
	log, err := f.host.logger(g)
	if err != nil {
		return err
	}
	ref, err := source.Parse(refArg)
	if err != nil {
		return err
	}
	platforms, err := f.remote.parsePlatforms()
	if err != nil {
		return err
	}
	if f.parallel < 1 {
		return usageError{fmt.Errorf("--parallel %d: must be at least 1", f.parallel)}
	}
	plan, err := parsePrefetch(f.prefetch)
	if err != nil {
		return err
	}
	if f.readTimeout <= 0 {
		return usageError{fmt.Errorf("--read-timeout %s: must be positive", f.readTimeout)}
	}
	verify, err := parseVerify(f.verify)
	if err != nil {
		return err
	}
	rec, err := newRecording(f.record)
	if err != nil {
		return err
	}
	// A recording must see every read, and the kernel serves passthrough
	// reads without asking the daemon.
	if rec != nil && f.passthrough {
		f.passthrough = false
		log.Debug("FUSE passthrough off: --record sees every read")
	}
	dir, err = checkMountpoint(dir, log)
	if err != nil {
		return err
	}

	// The disk cache is opened before anything else, so that a directory
	// that cannot be used is refused at once.
	disk, err := openDiskCache(cacheDirFor(f.cacheDir, ref), int64(f.chunkSize), int64(f.cacheSize), log)
	if err != nil {
		return err
	}
	if disk != nil {
		defer disk.Close()
	}

	obs := newMetrics(disk)
	stopMetrics, err := serveMetrics(obs, f.metricsAddr, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts, err := f.remote.storeOptions(log)
	if err != nil {
		return err
	}
	// One referrers listing per manifest (source.Open), shared by the
	// chunk tables and the boot profile (--prefetch auto).
	src, err := openSource(rctx, ref, storeOptionsObserved(opts, obs), log)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	tree, err := src.Resolve(rctx, platforms)
	if err != nil {
		return err
	}
	for _, w := range tree.Warnings {
		log.Warn(w)
	}
	obs.SetImage(info.Registry, info.Repository, tree)
	// The boot profile is looked up while the chunk tables are, and the
	// mount comes up.
	pctx, stopPrefetch := context.WithCancel(context.Background())
	defer stopPrefetch()
	profiles := lookupProfiles(pctx, src, tree, plan, log)
	verifier, err := newVerifier(rctx, verify, int64(f.chunkSize), src, tree, log)
	if err != nil {
		return err
	}

	const maxRequest = lazy.DefaultMaxRequest
	mem, lru, err := memoryFor(int64(f.memoryCache), disk != nil, f.parallel, int64(f.chunkSize), log)
	if err != nil {
		return err
	}
	// Without a disk cache what is fetched ahead waits in the LRU for its
	// reader: a window larger than half of it would be evicted unread.
	readAhead := int64(f.readAhead)
	if disk == nil && readAhead > lru/2 {
		readAhead = lru / 2
		log.Info("read-ahead window reduced to half the memory left for the LRU (raise --memory-cache for more)", "read-ahead", readAhead, "lru", lru)
	}
	// A blob that fails verification is dropped from the kernel's page
	// cache too; the root exists only once the fetcher does.
	var served atomic.Pointer[osfs.Root]
	lopts := lazy.Options{
		ChunkSize:    int64(f.chunkSize),
		MaxRequest:   maxRequest,
		Parallel:     f.parallel,
		FetchTimeout: f.readTimeout,
		Logger:       log,
		Observer:     obs,
		Integrity:    verifier,
		Host:         info.Name,
		CheckFirst:   info.Local,
		OnCorrupt: func(d digest.Digest) {
			if r := served.Load(); r != nil {
				r.InvalidateBlob(d)
			}
		},
	}
	if disk != nil {
		lopts.Disk = disk
	}
	fetcher, err := lazy.NewFetcher(src, mem, lopts)
	if err != nil {
		return usageError{err}
	}
	defer fetcher.Close()

	fopts := osfs.Options{Logger: log, ReadAhead: readAhead, Observer: obs, Status: statusOf(refArg, dir, f.metricsAddr, tree, obs, &served),
		Contents: f.contents, Blocks: blockcache.New(int64(f.contentsMem))}
	if f.passthrough && disk != nil {
		fopts.Passthrough = disk
	}
	root := osfs.NewRoot(tree, func(d digest.Digest, size int64) osfs.BlobReader {
		return rec.reader(d, timeoutReader{fetcher.Blob(d, size), f.readTimeout})
	}, fopts)
	served.Store(root)
	srv, err := osfs.Mount(dir, root, osfs.MountOptions{AllowOther: f.allowOther, Debug: f.fuseDebug, Name: refArg})
	if err != nil {
		return err // classified by osfs.Mount: FUSE or the mount point
	}
	log.Info("mounted", "reference", refArg, "digest", tree.Digest, "mountpoint", dir, "files", len(tree.Files))
	rec.start()
	f.host.ready(dir, log)
	// A boot profile is replayed within what the cache holds.
	budget := lru
	if disk != nil {
		budget = int64(f.cacheSize)
	}
	go startPrefetch(pctx, fetcher, profiles, tree, plan, budget, log)

	// SIGINT and SIGTERM cancel ctx (withInterrupt), even one that came
	// while the mount was coming up. From now on they are caught here, so
	// that another one does not kill the daemon while it unmounts.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			log.Info("unmounting", "cause", context.Cause(ctx), "mountpoint", dir)
			f.host.stopping(log)
			unmount(srv, dir, log)
		case <-done:
		}
	}()
	srv.Wait()
	f.host.stopping(log)
	close(done)
	log.Info("unmounted", "mountpoint", dir)
	return rec.write(log)
}

// contentsHelp is the help of --contents.
const contentsHelp = "show next to each disk.img, root.squashfs, image.iso and initramfs a read-only directory <file>.contents " +
	"with what is inside: partitions p1, p2, ... and their ext4, FAT, squashfs or ISO file systems, squashfs, ISO 9660 " +
	"(Rock Ridge, Joliet), cpio initramfs. Listing one fetches only the format's metadata; reading a file only its blocks"

// passthroughHelp is the help of --passthrough.
const passthroughHelp = "let the kernel read a layer straight from the disk cache (FUSE passthrough: no daemon CPU, local-file speed) " +
	"once it is complete there and verified against its digest; the file stays pinned in the cache while open. " +
	"Falls back to reads through the daemon, with one warning, where the kernel refuses (before Linux 6.9, not root, " +
	"a cache on a stacked filesystem), and for a file already open through the daemon"

// timeoutReader bounds every read by the read timeout, so a reader never
// waits forever whatever the network does.
type timeoutReader struct {
	b       *lazy.Blob
	timeout time.Duration
}

func (t timeoutReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.b.ReadAt(ctx, p, off)
}

// Prefetch passes read-ahead through to the blob.
func (t timeoutReader) Prefetch(off, n int64) { t.b.Prefetch(off, n) }
