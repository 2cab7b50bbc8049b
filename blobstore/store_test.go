package blobstore

import (
	"context"
	"errors"
	"testing"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestOpenUnreachable: a registry that is down is ErrUnreachable, whether
// plain HTTP is allowed or only HTTPS was tried.
func TestOpenUnreachable(t *testing.T) {
	reg := registrytest.Start(t)
	host := reg.Host()
	reg.Stop()
	for _, plainHTTP := range []bool{true, false} {
		_, err := Open(context.Background(), host+"/os/blob:any", Options{PlainHTTP: plainHTTP})
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("PlainHTTP %v: err = %v, want ErrUnreachable", plainHTTP, err)
		}
	}
}
