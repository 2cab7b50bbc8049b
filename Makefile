# osimagefs: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/osimagefs

# make install: the binary, the mount helper mount(8) runs for
# `mount -t fuse.osimagefs` and fstab (it looks in /sbin, /sbin/fs.d and
# /sbin/fs; /sbin is /usr/sbin on merged-/usr systems) and the systemd unit
# template. DESTDIR stages a package.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= /sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system

.PHONY: all build provision test unit e2e fuzz demo bench vet clean repocheck install uninstall

# No tracked file over 1 MiB and no build output (part of make test).
repocheck:
	scripts/repocheck.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-30s} scripts/fuzz.sh

all: build

# -buildvcs=auto stamps the commit into the binary (osimagefs version) even
# where GOFLAGS turns stamping off.
build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/osimagefs

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/osimagefs
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR)
	ln -sfn $(BINDIR)/osimagefs $(DESTDIR)$(SBINDIR)/mount.fuse.osimagefs
	sed 's|/usr/local/bin/osimagefs|$(BINDIR)/osimagefs|' dist/systemd/osimagefs@.service >$(DESTDIR)$(UNITDIR)/osimagefs@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/osimagefs@.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/osimagefs $(DESTDIR)$(SBINDIR)/mount.fuse.osimagefs $(DESTDIR)$(UNITDIR)/osimagefs@.service

# Installs the Debian packages and the cloud kernel the tests and demo use
# (idempotent, quick when everything is present).
provision:
	scripts/provision.sh

vet:
	$(GO) vet ./...

# Everything: unit tests under -race, then the end-to-end tests against a
# real registry, real FUSE mounts and real QEMU.
# The end-to-end package runs without -race in the test process (its
# in-process registry and toxiproxy would crawl); the daemon it tests is
# still built with -race (see test/e2e/main_test.go).
test: provision build vet
	scripts/repocheck.sh
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /test/e2e$$)
	$(GO) test -count=1 -timeout 25m ./test/e2e/
	FUZZTIME=$${FUZZTIME:-5s} scripts/fuzz.sh

unit:
	$(GO) test -race -count=1 -short ./...

e2e: provision build
	$(GO) test -count=1 -v -timeout 20m ./test/...

demo: provision build
	scripts/demo.sh

bench: provision build
	scripts/bench.sh

clean:
	rm -rf bin
