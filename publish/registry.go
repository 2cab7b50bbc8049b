package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
)

// registry is the repository pushed to, with one authenticated pusher and
// puller (each authenticates once, on first use).
type registry struct {
	tag    name.Tag
	pusher *remote.Pusher
	puller *remote.Puller
}

// parseTag parses Options.Reference, which must be a tag (or nothing, for
// ":latest").
func parseTag(reference string, plainHTTP bool) (name.Tag, error) {
	var nopts []name.Option
	if plainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(reference, nopts...)
	if err != nil {
		return name.Tag{}, &OptionError{Option: "REFERENCE", Value: reference, Reason: err.Error()}
	}
	tag, ok := ref.(name.Tag)
	if !ok {
		return name.Tag{}, &OptionError{Option: "REFERENCE", Value: reference, Reason: "push needs a tag (registry/repository:tag), not a digest"}
	}
	return tag, nil
}

func connect(tag name.Tag, o Options) (*registry, error) {
	ropts, err := remoteOptions(o)
	if err != nil {
		return nil, err
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}
	return &registry{tag: tag, pusher: pusher, puller: puller}, nil
}

// remoteOptions are the go-containerregistry options of o's connection:
// transport (plain HTTP guarded), credentials, user agent.
func remoteOptions(o Options) ([]remote.Option, error) {
	base := o.Transport
	if base == nil {
		var err error
		if base, err = defaultTransport(o); err != nil {
			return nil, err
		}
	}
	base = blobstore.GuardPlainHTTP(base, o.PlainHTTP)
	return []remote.Option{
		remote.WithTransport(base),
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithUserAgent(o.userAgent()),
	}, nil
}

// defaultTransport is a clone of http.DefaultTransport with the TLS
// settings of o. The response header timeout is generous: a registry may
// verify a large blob before it answers the request that completes it.
func defaultTransport(o Options) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 5 * time.Minute
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tc, err := blobstore.TLSConfig(o.Insecure, o.CAFile)
	if err != nil {
		return nil, &OptionError{Option: "ca-file", Value: o.CAFile, Reason: err.Error()}
	}
	t.TLSClientConfig = tc
	return t, nil
}

// upload sends a blob unless the registry already has it (a HEAD first).
func (r *registry) upload(ctx context.Context, l v1.Layer) error {
	return r.pusher.Upload(ctx, r.tag.Context(), l)
}

// put PUTs a manifest or index at ref (a tag, or the repository's digest).
func (r *registry) put(ctx context.Context, ref name.Reference, raw []byte, mediaType string) error {
	return r.pusher.Put(ctx, ref, rawDocument{raw: raw, mediaType: types.MediaType(mediaType)})
}

// get fetches the document at ref: its bytes and the media type the
// registry served it with.
func (r *registry) get(ctx context.Context, ref name.Reference) ([]byte, string, error) {
	d, err := r.puller.Get(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	return d.Manifest, string(d.MediaType), nil
}

// entryVariant is the variantFunc of this registry: the entry's variant
// annotation, else the manifest's, else "default".
func (r *registry) entryVariant(ctx context.Context, e ocispec.Descriptor) (string, error) {
	if v := e.Annotations[AnnotationVariant]; v != "" {
		return v, nil
	}
	raw, _, err := r.get(ctx, r.tag.Context().Digest(e.Digest.String()))
	if err != nil {
		return "", fmt.Errorf("fetch manifest %s of the existing index to learn its variant: %w", e.Digest, classify(err))
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("parse manifest %s of the existing index: %w", e.Digest, err)
	}
	return firstNonEmpty(m.Annotations[AnnotationVariant], "default"), nil
}

// rawDocument is a remote.Taggable of bytes that are PUT exactly as they
// are, with the given Content-Type.
type rawDocument struct {
	raw       []byte
	mediaType types.MediaType
}

func (d rawDocument) RawManifest() ([]byte, error)        { return d.raw, nil }
func (d rawDocument) MediaType() (types.MediaType, error) { return d.mediaType, nil }

// digestRef is the repository's reference to a digest.
func (r *registry) digestRef(d digest.Digest) name.Digest {
	return r.tag.Context().Digest(d.String())
}
