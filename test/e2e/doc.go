// Package e2e runs the built osimagefs binary against a real CNCF
// Distribution registry (in-process), with real FUSE mounts and real
// filesystem images (ext4, squashfs, ISO) built by the host's tools.
//
// It needs root, /dev/fuse and the tools scripts/provision.sh installs. With
// CI=true a missing piece fails the tests; otherwise they skip, saying why.
package e2e
