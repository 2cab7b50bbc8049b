package registrytest

import "regexp"

// blobPathRE matches /v2/<repo>/blobs/<digest>, where repo may contain
// slashes and digest is "algorithm:encoded" (so upload URLs such as
// /v2/<repo>/blobs/uploads/<uuid> do not match).
var blobPathRE = regexp.MustCompile(`^/v2/(.+)/blobs/([a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$`)

// ParseBlobPath returns the repository and digest of a blob URL path.
func ParseBlobPath(path string) (repo, digest string, ok bool) {
	m := blobPathRE.FindStringSubmatch(path)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}
