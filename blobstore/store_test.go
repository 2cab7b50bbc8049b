package blobstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

func randomBlob(n int) []byte {
	r := rand.New(rand.NewPCG(7, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestOpenUnreachable(t *testing.T) {
	reg := registrytest.Start(t)
	host := reg.Host()
	reg.Stop()
	_, err := Open(context.Background(), host+"/os/blob:any", Options{})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}
