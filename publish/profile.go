package publish

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/profile"
)

// ProfileOptions describe one PushProfile: the image, and the connection.
type ProfileOptions struct {
	// Reference is the image: a tag or a digest.
	Reference string
	// Platforms, when not empty, keeps only the index entries matching one.
	Platforms []image.Platform
	// Connection is how to reach the registry.
	Connection
	Logger *slog.Logger
	// Created stamps the referrer (profile.AnnotationCreated): of several
	// profiles, a mount uses the newest. Zero means now.
	Created time.Time
}

// ProfilePushed is one referrer PushProfile published.
type ProfilePushed struct {
	Manifest digest.Digest
	Dir      string // its directory in the tree, <arch>/<variant>
	Referrer digest.Digest
	Profile  digest.Digest // the profile blob
}

// PushProfile checks a boot profile against the image at o.Reference and
// attaches it, as an OCI referrer, to each image manifest that holds every
// layer it names: an image manifest of artifactType profile.ArtifactType,
// the empty config, one profile.MediaType layer (the entries, encoded by
// profile.Encode), the creation time as an annotation, and the image
// manifest as its subject (on a registry without the referrers API, also
// listed at the fallback tag sha256-<hex>).
//
// An entry naming a blob that is no layer of the image, or bytes past the
// end of its layer, fails the call (an error wrapping
// profile.ErrNotInImage, naming the entry) before anything is published;
// so do entries whose layers no single image manifest holds together.
func PushProfile(ctx context.Context, o ProfileOptions, entries []profile.Entry) ([]ProfilePushed, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, tree, err := o.resolve(ctx, o.Reference, o.Platforms, o.Logger)
	if err != nil {
		return nil, err
	}
	all := map[digest.Digest]int64{}
	for _, img := range tree.Images {
		for d, size := range profile.Layers(img) {
			all[d] = size
		}
	}
	if err := profile.Check(entries, all); err != nil {
		return nil, fmt.Errorf("check the boot profile against %s: %w", o.Reference, err)
	}
	var subjects []image.Image
	for _, img := range tree.Images {
		if profile.Check(entries, profile.Layers(img)) == nil {
			subjects = append(subjects, img)
		}
	}
	if len(subjects) == 0 {
		var dirs []string
		for _, img := range tree.Images {
			dirs = append(dirs, img.Dir)
		}
		return nil, fmt.Errorf("check the boot profile against %s: %w: no one image holds every layer it names (it mixes layers of %s); record one image, or push with --platform", o.Reference, profile.ErrNotInImage, strings.Join(dirs, ", "))
	}

	var doc bytes.Buffer
	if err := profile.Encode(&doc, entries); err != nil {
		return nil, fmt.Errorf("encode the boot profile: %w", err)
	}
	blob := referrerBlob{raw: doc.Bytes(), what: "the boot profile", desc: ocispec.Descriptor{
		MediaType: profile.MediaType, Digest: digest.FromBytes(doc.Bytes()), Size: int64(doc.Len())}}
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	annotations := map[string]string{profile.AnnotationCreated: created.UTC().Format(time.RFC3339Nano)}
	pusher, err := newReferrerPusher(store.Reference().Context(), Options{Connection: o.Connection, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	var out []ProfilePushed
	for _, img := range subjects {
		subject, err := subjectOf(tree, img)
		if err != nil {
			return nil, err
		}
		d, err := pusher.publish(ctx, subject, profile.ArtifactType, []referrerBlob{blob}, annotations)
		if err != nil {
			return out, err
		}
		log.Debug("published boot profile referrer", "manifest", img.Digest, "referrer", d, "entries", len(entries))
		out = append(out, ProfilePushed{Manifest: img.Digest, Dir: img.Dir, Referrer: d, Profile: blob.desc.Digest})
	}
	return out, nil
}
