//go:build tools

package tools

import (
	_ "github.com/distribution/distribution/v3/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/hanwen/go-fuse/v2/fs"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/opencontainers/go-digest"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/sync/singleflight"
	_ "github.com/Shopify/toxiproxy/v2"
	_ "github.com/opencontainers/image-spec/specs-go/v1"
)
