package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushClient is used by the push helpers. Requests are bounded by the
// caller's context, not by a client timeout, so large blobs can stream.
var pushClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}()}

// PushBlobFile uploads the file at path as a blob of repo on the registry at
// host ("host:port", plain HTTP), using the OCI distribution API: POST
// /v2/<repo>/blobs/uploads/ then one PUT <location>?digest=... whose body
// streams the file with Content-Length set. The file is read once before
// the upload to compute its sha256. mediaType only goes into the returned
// descriptor: registries do not store a blob's media type.
func PushBlobFile(ctx context.Context, host, repo, path, mediaType string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()

	digester := digest.Canonical.Digester()
	size, err := io.Copy(digester.Hash(), f)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("hash %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digester.Digest(), Size: size}
	// Hide f's other methods (e.g. WriterTo) so net/http treats it as a
	// plain stream of exactly size bytes.
	body := io.NopCloser(io.LimitReader(f, size))
	if err := pushBlob(ctx, host, repo, desc, body); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// PushBlobBytes uploads data as a blob of repo, like PushBlobFile.
func PushBlobBytes(ctx context.Context, host, repo string, data []byte, mediaType string) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := pushBlob(ctx, host, repo, desc, io.NopCloser(bytes.NewReader(data))); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

func pushBlob(ctx context.Context, host, repo string, desc ocispec.Descriptor, body io.ReadCloser) error {
	base := &url.URL{Scheme: "http", Host: host, Path: "/"}

	// Start an upload session.
	start := base.JoinPath("v2", repo, "blobs", "uploads") // no trailing slash
	start.Path += "/"
	resp, err := do(ctx, http.MethodPost, start.String(), nil, -1, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: unexpected status %s", start, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("POST %s: bad Location %q: %v", start, resp.Header.Get("Location"), err)
	}

	// Complete it with the whole blob in one PUT.
	put := base.ResolveReference(loc)
	q := put.Query()
	q.Set("digest", desc.Digest.String())
	put.RawQuery = q.Encode()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err = do(ctx, http.MethodPut, put.String(), hdr, desc.Size, body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT blob %s: unexpected status %s", desc.Digest, resp.Status)
	}
	return nil
}

// PutManifest uploads body as the manifest reference (tag or digest) of repo
// with the given Content-Type, and returns its digest as reported by the
// registry (Docker-Content-Digest), or the sha256 of body if the registry
// sent none.
func PutManifest(ctx context.Context, host, repo, reference, mediaType string, body []byte) (string, error) {
	u := (&url.URL{Scheme: "http", Host: host, Path: "/"}).JoinPath("v2", repo, "manifests", reference)
	hdr := http.Header{"Content-Type": {mediaType}}
	resp, err := do(ctx, http.MethodPut, u.String(), hdr, int64(len(body)), io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" {
		return d, nil
	}
	return digest.FromBytes(body).String(), nil
}

// do sends a request and turns a non-2xx answer into an error that carries
// the registry's response body. On success the caller closes resp.Body.
func do(ctx context.Context, method, u string, hdr http.Header, size int64, body io.ReadCloser) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if size >= 0 {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	resp, err := pushClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}
