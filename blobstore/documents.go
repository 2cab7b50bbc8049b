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
	err := s.retry(ctx, "fetch blob "+d.Digest.String(), func(ctx context.Context) error {
		return s.fetch(ctx, s.blobURL(d.Digest), nil, func(resp *http.Response, body io.Reader) error {
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			var err error
			out, err = readLimited(body, limit)
			return err
		})
	})
	return out, err
}

// manifest GETs /v2/<repo>/manifests/<identifier> and returns the body, its
// Content-Type and its digest (checked against the identifier when that is
// a digest).
func (s *Store) manifest(ctx context.Context, identifier string) ([]byte, string, digest.Digest, error) {
	var raw []byte
	var mt string
	url := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", s.scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), identifier)
	err := s.retry(ctx, "fetch manifest "+identifier, func(ctx context.Context) error {
		return s.fetch(ctx, url, http.Header{"Accept": {acceptManifests}}, func(resp *http.Response, body io.Reader) error {
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

func (s *Store) blobURL(d digest.Digest) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", s.scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), d)
}

// get sends a GET with extra headers.
func (s *Store) get(ctx context.Context, url string, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if pe := (*PlainHTTPError)(nil); errors.As(err, &pe) {
			return nil, pe // it names both URLs without their queries; the *url.Error would show a pre-signed query
		}
		return nil, classify(err)
	}
	return resp, nil
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
