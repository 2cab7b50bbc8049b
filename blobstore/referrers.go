package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
)

// A Store is where integrity.Find looks for chunk tables.
var _ integrity.Source = (*Store)(nil)

// maxReferrerPages bounds the pages of one referrers answer followed
// through its Link headers.
const maxReferrerPages = 16

// Referrers lists the manifests whose subject is the manifest subject and
// whose artifactType is artifactType ("" for every one). It asks the
// referrers API of OCI distribution 1.1 (GET /v2/<repo>/referrers/<digest>)
// and, when the registry lacks it (404, 400 or 406, or an answer that is
// not an OCI index), reads the index at the tag-schema fallback tag
// sha256-<hex>; no such tag means no referrers. Every artifact that finds
// what is attached to an image comes here.
//
// The origin is asked; an origin that cannot be reached (after a few
// attempts when there are mirrors) leaves it to the mirrors that resolve,
// in order.
//
// The artifactType filter is applied here too, whatever the registry did
// with it. A descriptor whose artifactType is the empty config's
// (application/vnd.oci.empty.v1+json) is kept: a registry that derives it
// from the config alone reports that for every artifact of the OCI 1.1
// shape, and the caller checks the manifest's own artifactType.
func (s *Store) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("list referrers of %q: %w", subject, err)
	}
	// The origin knows; with mirrors to turn to, it gets a few attempts.
	attempts := 0
	if len(s.mirrors) > 0 {
		attempts = originAttemptsWithMirrors
	}
	descs, err := s.referrersAt(ctx, s.origin, subject, artifactType, attempts)
	if err != nil && ctx.Err() == nil && transient(err) {
		var fromMirror []ocispec.Descriptor
		var mirror string
		ok, merr := s.fromMirrors(ctx, true, "", "list referrers of "+subject.String(), func(ctx context.Context, m *endpoint) error {
			var err error
			fromMirror, err = s.referrersAt(ctx, m, subject, artifactType, 1)
			mirror = m.host
			return err
		})
		if ok {
			s.log.Warn("registry cannot be reached: referrers listed by a mirror", "host", s.origin.host, "mirror", mirror, "err", err)
			descs, err = fromMirror, nil
		} else if merr != nil {
			err = merr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", subject, err)
	}
	return filterReferrers(descs, artifactType), nil
}

// originAttemptsWithMirrors bounds the attempts to list referrers at an
// origin that has mirrors (which resolve) to turn to.
const originAttemptsWithMirrors = 3

// referrersAt lists the referrers of subject at e: its referrers API, else
// the fallback tag; attempts as for manifestAt.
func (s *Store) referrersAt(ctx context.Context, e *endpoint, subject digest.Digest, artifactType string, attempts int) ([]ocispec.Descriptor, error) {
	descs, ok, err := s.referrersAPI(ctx, e, subject, artifactType, attempts)
	if err != nil || ok {
		return descs, err
	}
	return s.referrersTag(ctx, e, subject, attempts)
}

// referrersAPI asks the referrers API, following Link headers to further
// pages. ok is false when the registry has no such API.
func (s *Store) referrersAPI(ctx context.Context, e *endpoint, subject digest.Digest, artifactType string, attempts int) (descs []ocispec.Descriptor, ok bool, err error) {
	q := url.Values{}
	if artifactType != "" {
		q.Set("artifactType", artifactType)
	}
	u := e.withQuery(e.root+"/"+s.repo.RepositoryStr()+"/referrers/"+subject.String(), q)
	for page := 0; u != ""; page++ {
		if page == maxReferrerPages {
			return nil, false, fmt.Errorf("%w: the referrers answer has more than %d pages", ErrTooLarge, maxReferrerPages)
		}
		var raw []byte
		var next string
		api := true
		err := s.retryN(ctx, e, "GET referrers", attempts, func(ctx context.Context) error {
			return s.fetch(ctx, e, u, http.Header{"Accept": {image.MediaTypeOCIIndex}}, func(resp *http.Response, body io.Reader) error {
				switch resp.StatusCode {
				case http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable:
					api = false // no referrers API: the spec's signal to use the tag
					return nil
				}
				if err := checkStatus(resp, http.StatusOK); err != nil {
					return err
				}
				if !isOCIIndex(resp.Header.Get("Content-Type")) {
					api = false
					return nil
				}
				var err error
				if raw, err = readLimited(body, image.MaxDocumentSize); err != nil {
					return err
				}
				next, err = nextPage(resp)
				return err
			})
		})
		switch {
		case err != nil:
			return nil, false, err
		case !api && page == 0:
			return nil, false, nil
		case !api:
			return nil, false, fmt.Errorf("%w: page %d of the referrers answer is not an OCI index", ErrBadResponse, page+1)
		}
		more, err := parseReferrers(raw)
		if err != nil {
			return nil, false, err
		}
		descs = append(descs, more...)
		u = next
	}
	return descs, true, nil
}

// referrersTag reads the index at the tag-schema fallback tag of subject:
// its manifests are the referrers. No such tag: none.
func (s *Store) referrersTag(ctx context.Context, e *endpoint, subject digest.Digest, attempts int) ([]ocispec.Descriptor, error) {
	tag := FallbackTag(subject)
	raw, mt, _, err := s.manifestAt(ctx, e, tag, attempts)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fallback tag %s: %w", tag, err)
	}
	if !isOCIIndex(mt) {
		return nil, fmt.Errorf("fallback tag %s: %w: it holds %q, not an OCI index", tag, ErrBadResponse, mt)
	}
	descs, err := parseReferrers(raw)
	if err != nil {
		return nil, fmt.Errorf("fallback tag %s: %w", tag, err)
	}
	return descs, nil
}

// FallbackTag is the tag-schema fallback tag of manifest d: its digest
// with the colon replaced by a dash ("sha256-<hex>").
func FallbackTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// parseReferrers parses the index of a referrers answer or fallback tag.
func parseReferrers(raw []byte) ([]ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%w: parse the referrers index: %w", ErrBadResponse, err)
	}
	return idx.Manifests, nil
}

// filterReferrers keeps the descriptors of artifactType (all for "").
func filterReferrers(descs []ocispec.Descriptor, artifactType string) []ocispec.Descriptor {
	if artifactType == "" {
		return descs
	}
	out := descs[:0]
	for _, d := range descs {
		if referrerMayBe(d, artifactType) {
			out = append(out, d)
		}
	}
	return out
}

// referrerMayBe reports whether the referrer d may be of artifactType: it
// says so, or says nothing, or says the empty config's type (which a
// registry reports when it reads the config's media type only).
func referrerMayBe(d ocispec.Descriptor, artifactType string) bool {
	switch d.ArtifactType {
	case artifactType, "", ocispec.MediaTypeEmptyJSON:
		return true
	}
	return false
}

// isOCIIndex reports whether a Content-Type is the OCI index's.
func isOCIIndex(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.EqualFold(mt, image.MediaTypeOCIIndex)
}

// nextPage is the URL of the next page a Link header names (rel="next"),
// resolved against the request; "" when there is none. A page on another
// host is refused: the client's credentials are for this registry.
func nextPage(resp *http.Response) (string, error) {
	for _, link := range resp.Header.Values("Link") {
		for _, part := range strings.Split(link, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			target = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
			ref, err := url.Parse(target)
			if err != nil {
				return "", fmt.Errorf("%w: Link header %q: %w", ErrBadResponse, link, err)
			}
			next := resp.Request.URL.ResolveReference(ref)
			if next.Host != resp.Request.URL.Host {
				return "", fmt.Errorf("%w: the next page of referrers is on another host, %s", ErrBadResponse, next.Host)
			}
			return next.String(), nil
		}
	}
	return "", nil
}
