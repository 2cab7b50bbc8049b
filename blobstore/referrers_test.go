package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

const referrersRepo = "os/attached"

// startGGCR runs go-containerregistry's in-process registry, which has the
// referrers API, behind wrap (nil: none), and returns its host.
func startGGCR(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// registries are the two kinds of registry a referrers lookup meets: the
// CNCF Distribution registry (no referrers API: the fallback tag) and
// go-containerregistry's (the API).
func registries(t *testing.T) map[string]string {
	return map[string]string{"distribution": registrytest.Start(t).Host(), "ggcr": startGGCR(t, nil)}
}

// pushManifest pushes the blobs named and a manifest, by digest, and
// returns its descriptor.
func pushManifest(t *testing.T, host string, m ocispec.Manifest, blobs map[string][]byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	for mt, b := range blobs {
		if _, err := registrytest.PushBlobBytes(ctx, host, referrersRepo, b, mt); err != nil {
			t.Fatal(err)
		}
	}
	m.SchemaVersion = 2
	m.MediaType = ocispec.MediaTypeImageManifest
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(raw)
	if m.Subject == nil {
		if _, err := registrytest.PutManifest(ctx, host, referrersRepo, d.String(), m.MediaType, raw); err != nil {
			t.Fatal(err)
		}
	} else {
		// go-containerregistry's remote keeps the fallback tag of a
		// registry without the referrers API, as publish does.
		ref, err := name.NewDigest(host+"/"+referrersRepo+"@"+d.String(), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(ref, rawManifest{raw}, remote.WithReferrersTagFallback(true)); err != nil {
			t.Fatal(err)
		}
	}
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(raw))}
}

type rawManifest struct{ raw []byte }

func (r rawManifest) RawManifest() ([]byte, error) { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

// pushSubject pushes a small OS image manifest.
func pushSubject(t *testing.T, host string, layer string) ocispec.Descriptor {
	cfg := []byte(`{"commandLine":"console=ttyS0"}`)
	data := []byte(layer)
	return pushManifest(t, host, ocispec.Manifest{
		Config: ocispec.Descriptor{MediaType: image.MediaTypeIronCoreConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{MediaType: "application/vnd.ironcore.image.rootfs", Digest: digest.FromBytes(data), Size: int64(len(data))}},
	}, map[string][]byte{image.MediaTypeIronCoreConfig: cfg, "application/vnd.ironcore.image.rootfs": data})
}

// pushTablesReferrer attaches an (empty) chunk-table artifact to subject,
// in the OCI 1.1 shape: artifactType set, the empty config.
func pushTablesReferrer(t *testing.T, host string, subject ocispec.Descriptor) ocispec.Descriptor {
	cfg := ocispec.DescriptorEmptyJSON
	cfg.Data = nil
	return pushManifest(t, host, ocispec.Manifest{
		ArtifactType: image.ArtifactTypeChunkTables,
		Config:       cfg,
		Layers:       []ocispec.Descriptor{},
		Subject:      &subject,
	}, map[string][]byte{ocispec.MediaTypeEmptyJSON: []byte("{}")})
}

// pushOtherReferrer attaches an artifact of another type to subject, in
// the older shape: the type as the config's media type.
func pushOtherReferrer(t *testing.T, host string, subject ocispec.Descriptor) ocispec.Descriptor {
	const other = "application/vnd.example.sbom.v1+json"
	cfg := []byte(`{"sbom":true}`)
	return pushManifest(t, host, ocispec.Manifest{
		Config:  ocispec.Descriptor{MediaType: other, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:  []ocispec.Descriptor{},
		Subject: &subject,
	}, map[string][]byte{other: cfg})
}

func openReferrersStore(t *testing.T, host string) *Store {
	t.Helper()
	s, err := Open(context.Background(), host+"/"+referrersRepo+":any", Options{PlainHTTP: true, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digests(descs []ocispec.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range descs {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

// TestReferrers: the referrers API (ggcr) and the fallback tag
// (Distribution) give the same referrers, filtered by artifactType, and
// none for a manifest without any.
func TestReferrers(t *testing.T) {
	ctx := context.Background()
	got := map[string][]digest.Digest{}
	for kind, host := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			subject := pushSubject(t, host, "disk")
			tables := pushTablesReferrer(t, host, subject)
			other := pushOtherReferrer(t, host, subject)
			lonely := pushSubject(t, host, "another disk")
			s := openReferrersStore(t, host)

			descs, err := s.Referrers(ctx, subject.Digest, image.ArtifactTypeChunkTables)
			if err != nil {
				t.Fatal(err)
			}
			if d := digests(descs); !slices.Equal(d, []digest.Digest{tables.Digest}) {
				t.Errorf("chunk-table referrers = %v, want [%s]", d, tables.Digest)
			}
			got[kind] = digests(descs)

			all, err := s.Referrers(ctx, subject.Digest, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []digest.Digest{tables.Digest, other.Digest}
			slices.Sort(want)
			if d := digests(all); !slices.Equal(d, want) {
				t.Errorf("all referrers = %v, want %v", d, want)
			}

			// Which way the answer came: the fallback tag exists only
			// where the registry has no referrers API.
			_, _, _, err = s.manifestAt(ctx, s.origin, FallbackTag(subject.Digest), 0)
			if hasTag := err == nil; hasTag != (kind == "distribution") {
				t.Errorf("fallback tag present = %v (%v), want it only on the registry without the API", hasTag, err)
			}

			none, err := s.Referrers(ctx, lonely.Digest, image.ArtifactTypeChunkTables)
			if err != nil || len(none) != 0 {
				t.Errorf("referrers of a manifest without any = %v, %v; want none, no error", none, err)
			}
		})
	}
	if !slices.Equal(got["distribution"], got["ggcr"]) || len(got["ggcr"]) != 1 {
		t.Errorf("the two registries disagree: %v", got)
	}
}

// TestReferrersRegistryError: a registry that refuses the referrers
// request is an error, not "no referrers".
func TestReferrersRegistryError(t *testing.T) {
	host := startGGCR(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"errors":[{"code":"DENIED","message":"no referrers for you"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	subject := pushSubject(t, host, "disk")
	_, err := openReferrersStore(t, host).Referrers(context.Background(), subject.Digest, image.ArtifactTypeChunkTables)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), subject.Digest.String()) {
		t.Errorf("err = %v, want ErrUnauthorized naming the subject", err)
	}
}

// TestReferrersFallbackNotIndex: a fallback tag that holds something other
// than an index is a bad response, not "no referrers".
func TestReferrersFallbackNotIndex(t *testing.T) {
	host := registrytest.Start(t).Host()
	subject := pushSubject(t, host, "disk")
	other := pushSubject(t, host, "other")
	s := openReferrersStore(t, host)
	m, _, err := s.Manifest(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registrytest.PutManifest(context.Background(), host, referrersRepo, FallbackTag(subject.Digest), ocispec.MediaTypeImageManifest, m); err != nil {
		t.Fatal(err)
	}
	_, err = s.Referrers(context.Background(), subject.Digest, image.ArtifactTypeChunkTables)
	if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), FallbackTag(subject.Digest)) {
		t.Errorf("err = %v, want ErrBadResponse naming the fallback tag", err)
	}
}

// TestReferrersPages: a referrers answer in pages (Link: rel="next") is
// read whole.
func TestReferrersPages(t *testing.T) {
	subject := digest.FromString("subject")
	page := func(ds ...string) []byte {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
		idx.SchemaVersion = 2
		for _, d := range ds {
			idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: image.ArtifactTypeChunkTables, Digest: digest.FromString(d), Size: 1})
		}
		b, _ := json.Marshal(idx)
		return b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/referrers/"+subject.String()) && r.URL.Query().Get("page") == "":
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Header().Set("Link", `</v2/`+referrersRepo+`/referrers/`+subject.String()+`?page=2>; rel="next"`)
			w.Write(page("a", "b"))
		case strings.HasSuffix(r.URL.Path, "/referrers/"+subject.String()):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Write(page("c"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s := openReferrersStore(t, strings.TrimPrefix(srv.URL, "http://"))
	descs, err := s.Referrers(context.Background(), subject, image.ArtifactTypeChunkTables)
	if err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{digest.FromString("a"), digest.FromString("b"), digest.FromString("c")}
	slices.Sort(want)
	if d := digests(descs); !slices.Equal(d, want) {
		t.Errorf("referrers = %v, want %v", d, want)
	}
}

// TestBlobUpTo: a blob larger than the limit is refused before any GET,
// and one the registry sends longer than the limit too.
func TestBlobUpTo(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t)
	data := []byte("0123456789")
	desc, err := registrytest.PushBlobBytes(ctx, reg.Host(), referrersRepo, data, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	s := openReferrersStore(t, reg.Host())
	if b, err := s.BlobUpTo(ctx, desc, 10); err != nil || string(b) != string(data) {
		t.Errorf("BlobUpTo(10) = %q, %v", b, err)
	}
	if _, err := s.BlobUpTo(ctx, desc, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("BlobUpTo(9) err = %v, want ErrTooLarge", err)
	}
	lying := desc
	lying.Size = 5 // the descriptor understates: the body is cut at the limit
	if _, err := s.BlobUpTo(ctx, lying, 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("BlobUpTo of a longer body err = %v, want ErrTooLarge", err)
	}
}
