package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// acceptManifests is the Accept header for manifest requests: every index
// and manifest type an OS image may use.
var acceptManifests = strings.Join([]string{
	image.MediaTypeOCIIndex,
	image.MediaTypeOCIManifest,
	image.MediaTypeDockerList,
	image.MediaTypeDockerManifest,
	image.MediaTypeSeedArtifacts,
}, ", ")

// Resolve fetches the document the reference names and everything it
// refers to, and lays out the tree. A tag is resolved once: the tree names
// the digest it pointed to, and reads use only digests from then on.
func (s *Store) Resolve(ctx context.Context, platforms []image.Platform) (*image.Tree, error) {
	raw, mt, dgst, err := s.manifest(ctx, s.ref.Identifier())
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", s.ref, err)
	}
	t, err := image.Resolve(ctx, s, image.Top{Digest: dgst, MediaType: mt, Raw: raw}, platforms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.ref, err)
	}
	return t, nil
}

// Manifest implements image.Fetcher.
func (s *Store) Manifest(ctx context.Context, d ocispec.Descriptor) ([]byte, string, error) {
	raw, mt, _, err := s.manifest(ctx, d.Digest.String())
	return raw, mt, err
}

// Blob implements image.Fetcher: the whole of a small blob.
func (s *Store) Blob(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	return s.BlobUpTo(ctx, d, image.MaxDocumentSize)
}

// BlobUpTo fetches the whole of blob d, which must be at most limit bytes
// (by its descriptor and by what the registry sends). The caller checks
// the bytes against the digest.
func (s *Store) BlobUpTo(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s: %w: %d bytes is too large to fetch whole (the limit is %d)", d.Digest, ErrTooLarge, d.Size, limit)
	}
	var out []byte
	what := "fetch blob " + d.Digest.String()
	attempt := func(ctx context.Context, e *endpoint) error {
		return s.fetch(ctx, e, e.url(s.repo.RepositoryStr(), "blobs", d.Digest.String()), nil, func(resp *http.Response, body io.Reader) error {
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			var err error
			out, err = readLimited(body, limit)
			s.observeBytes(e, int64(len(out)))
			if err == nil && e.mirror {
				err = checkDigest(d.Digest, out)
			}
			return err
		})
	}
	if ok, err := s.fromMirrors(ctx, false, d.Digest, what, attempt); ok || err != nil {
		return out, err
	}
	err := s.retry(ctx, s.origin, what, func(ctx context.Context) error { return attempt(ctx, s.origin) })
	return out, err
}

// errDigestMismatch: a mirror sent a document or small blob whose bytes
// do not match the digest asked for (the origin's are checked by the
// caller, which names what it was resolving).
var errDigestMismatch = errors.New("content does not match its digest")

// checkDigest checks b against d.
func checkDigest(d digest.Digest, b []byte) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return fmt.Errorf("%w: got %s", errDigestMismatch, got)
	}
	return nil
}

// manifest GETs /v2/<repo>/manifests/<identifier> and returns the body, its
// Content-Type and its digest (checked against the identifier when that is
// a digest). A digest is asked of the mirrors that pull first, a tag of
// those that resolve, one attempt each; the origin last, with its retries.
func (s *Store) manifest(ctx context.Context, identifier string) ([]byte, string, digest.Digest, error) {
	want, perr := digest.Parse(identifier)
	var raw []byte
	var mt string
	var dgst digest.Digest
	ok, err := s.fromMirrors(ctx, perr != nil, want, "fetch manifest "+identifier, func(ctx context.Context, e *endpoint) error {
		var err error
		raw, mt, dgst, err = s.manifestAt(ctx, e, identifier, 1)
		if err == nil && perr == nil {
			err = checkDigest(want, raw)
		}
		return err
	})
	if ok || err != nil {
		return raw, mt, dgst, err
	}
	return s.manifestAt(ctx, s.origin, identifier, 0)
}

// manifestAt is manifest from e alone, in at most attempts attempts (0:
// retried until ctx ends).
func (s *Store) manifestAt(ctx context.Context, e *endpoint, identifier string, attempts int) ([]byte, string, digest.Digest, error) {
	var raw []byte
	var mt string
	err := s.retryN(ctx, e, "fetch manifest "+identifier, attempts, func(ctx context.Context) error {
		return s.fetch(ctx, e, e.url(s.repo.RepositoryStr(), "manifests", identifier), http.Header{"Accept": {acceptManifests}}, func(resp *http.Response, body io.Reader) error {
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			mt = resp.Header.Get("Content-Type")
			var err error
			raw, err = readLimited(body, image.MaxDocumentSize)
			return err
		})
	})
	if err != nil {
		return nil, "", "", err
	}
	dgst := digest.FromBytes(raw)
	if want, err := digest.Parse(identifier); err == nil {
		dgst = want // image.Resolve verifies the bytes against it
	}
	return raw, mt, dgst, nil
}

// readLimited reads all of r, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}
