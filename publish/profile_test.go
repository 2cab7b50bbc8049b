package publish

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/profile"
)

// TestPushProfile: a profile pushed as a referrer is found by a mount's
// lookup (profile.Find through the shared listing that integrity.Find
// uses too), on registries with and without the referrers API; the
// newest of two wins; a profile naming bytes not in the image, or mixing
// two images, publishes nothing.
func TestPushProfile(t *testing.T) {
	for kind, host := range attachRegistries(t) {
		t.Run(kind, func(t *testing.T) {
			o := pushOtherTool(t, host)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			disk := o.layer["amd64"]
			size := int64(len(o.disks["amd64"]))
			old := []profile.Entry{{Digest: disk, Off: 0, Len: 10, AtMs: 0}}
			entries := []profile.Entry{{Digest: disk, Off: 4096, Len: 8192, AtMs: 1}, {Digest: disk, Off: size - 1, Len: 1, AtMs: 7}}
			opts := ProfileOptions{Reference: o.ref, Connection: Connection{PlainHTTP: true}, Created: time.Unix(1000, 0)}
			if _, err := PushProfile(ctx, opts, old); err != nil {
				t.Fatal(err)
			}
			opts.Created = time.Unix(2000, 0)
			pushed, err := PushProfile(ctx, opts, entries)
			if err != nil {
				t.Fatal(err)
			}
			if len(pushed) != 1 || pushed[0].Dir != "amd64/default" {
				t.Fatalf("pushed %+v, want one referrer, of amd64", pushed)
			}

			s, err := blobstore.Open(ctx, o.ref, blobstore.Options{PlainHTTP: true})
			if err != nil {
				t.Fatal(err)
			}
			tree, err := s.Resolve(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			shared := blobstore.NewSharedReferrers(ctx, s)
			if _, _, err := integrity.Find(ctx, shared, tree.Images); err != nil {
				t.Fatal(err)
			}
			for _, img := range tree.Images {
				found, err := profile.Find(ctx, shared, img)
				if err != nil {
					t.Fatalf("%s: %v", img.Dir, err)
				}
				switch {
				case img.Dir == "amd64/default" && (found == nil || !reflect.DeepEqual(found.Entries, entries) || found.Referrer != pushed[0].Referrer):
					t.Errorf("%s: found %+v, want the newer profile %v in %s", img.Dir, found, entries, pushed[0].Referrer)
				case img.Dir != "amd64/default" && found != nil:
					t.Errorf("%s: found %+v, want none", img.Dir, found)
				}
			}

			for _, c := range []struct {
				name    string
				entries []profile.Entry
				want    string
			}{
				{"past the end", []profile.Entry{entries[0], {Digest: disk, Off: size, Len: 1}}, "entry 1: not in the image: bytes"},
				{"unknown digest", []profile.Entry{{Digest: digest.FromString("no such layer"), Off: 0, Len: 1}}, "entry 0: not in the image: digest"},
				{"two images", []profile.Entry{entries[0], {Digest: o.layer["arm64"], Off: 0, Len: 1}}, "no one image holds every layer"},
			} {
				_, err := PushProfile(ctx, opts, c.entries)
				if err == nil || !errors.Is(err, profile.ErrNotInImage) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want an ErrNotInImage saying %q", c.name, err, c.want)
				}
			}
		})
	}
}
