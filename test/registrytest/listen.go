package registrytest

import (
	"context"
	"fmt"
	"net"
	"time"
)

// listenFree listens on 127.0.0.1 on a port chosen by the kernel. Keeping the
// listener (rather than probing a port and closing it) avoids races with
// other tests grabbing the same port.
func listenFree() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}

// listenAgain listens on addr again, retrying briefly while the port is still
// held (for example by a listener that is just being closed).
func listenAgain(ctx context.Context, addr string) (net.Listener, error) {
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("listen %s: %w (context: %v)", addr, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
