package layout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// defaultTag is the tag a reference without TAG or DIGEST falls back to,
// when the layout holds several images.
const defaultTag = "latest"

// selectImage finds the descriptor of the image ref names.
func (l *Layout) selectImage(ctx context.Context, ref Ref) (ocispec.Descriptor, error) {
	switch {
	case ref.Digest != "":
		return l.byDigest(ctx, ref.Digest)
	case ref.Tag != "":
		return l.byTag(ref.Tag)
	}
	return l.only(ctx)
}

// byTag is the index.json entry tagged tag (annotation
// org.opencontainers.image.ref.name). Entries of one digest under the same
// tag are one image; entries of several are ambiguous.
func (l *Layout) byTag(tag string) (ocispec.Descriptor, error) {
	var found []ocispec.Descriptor
	for _, d := range l.index.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] == tag && !slices.ContainsFunc(found, func(f ocispec.Descriptor) bool { return f.Digest == d.Digest }) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return ocispec.Descriptor{}, errorf(ErrNotFound, "%s: no entry is tagged %q (%s)", l.path(indexFile), tag, l.tagList())
	}
	var ds []string
	for _, d := range found {
		ds = append(ds, d.Digest.String())
	}
	return ocispec.Descriptor{}, errorf(ErrAmbiguous, "%s: the tag %q names %d images (%s): name one as oci:%s@DIGEST", l.path(indexFile), tag, len(found), strings.Join(ds, ", "), l.dir)
}

// byDigest is the manifest or index d: as index.json, or an index it
// reaches, lists it; else its blob file, if the layout has it, typed by
// its own mediaType.
func (l *Layout) byDigest(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	for _, e := range l.index.Manifests {
		if e.Digest == d {
			return e, nil
		}
	}
	if e, ok := l.scanned(ctx).known[d]; ok {
		return e, nil
	}
	rel, err := blobRel(d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	raw, err := l.readFile(rel, image.MaxDocumentSize)
	if errors.Is(err, ErrNotFound) {
		return ocispec.Descriptor{}, errorf(ErrNotFound, "%s holds no manifest or index %s", l.dir, d)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: ownMediaType(raw), Digest: d, Size: int64(len(raw))}, nil
}

// only is the one image index.json lists, referrers and the indexes of
// fallback tags aside; of several, the one tagged latest.
func (l *Layout) only(ctx context.Context) (ocispec.Descriptor, error) {
	s := l.scanned(ctx)
	var images []ocispec.Descriptor
	for _, d := range l.index.Manifests {
		if !s.referrer[d.Digest] && !slices.ContainsFunc(images, func(f ocispec.Descriptor) bool { return f.Digest == d.Digest }) {
			images = append(images, d)
		}
	}
	switch len(images) {
	case 0:
		return ocispec.Descriptor{}, errorf(ErrNotFound, "%s lists no image", l.path(indexFile))
	case 1:
		return images[0], nil
	}
	if d, err := l.byTag(defaultTag); err == nil {
		return d, nil
	} else if errors.Is(err, ErrAmbiguous) {
		return ocispec.Descriptor{}, err
	}
	var untagged []string
	for _, d := range images {
		if d.Annotations[ocispec.AnnotationRefName] == "" {
			untagged = append(untagged, d.Digest.String())
		}
	}
	msg := fmt.Sprintf("%s lists %d images and none is tagged %q: name one as oci:%s:TAG (%s)", l.path(indexFile), len(images), defaultTag, l.dir, l.tagList())
	if len(untagged) > 0 {
		msg += fmt.Sprintf(" or oci:%s@DIGEST (untagged: %s)", l.dir, strings.Join(untagged, ", "))
	}
	return ocispec.Descriptor{}, errorf(ErrAmbiguous, "%s", msg)
}

// tagList says which tags index.json has, for errors.
func (l *Layout) tagList() string {
	var tags []string
	for _, d := range l.index.Manifests {
		if t := d.Annotations[ocispec.AnnotationRefName]; t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return "it has no tags"
	}
	slices.Sort(tags)
	return "its tags: " + strings.Join(tags, ", ")
}
