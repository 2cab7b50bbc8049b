package registrytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// readyTimeout bounds how long Start and Restart wait for GET /v2/ to answer
// 200 when the caller's context has no earlier deadline.
const readyTimeout = 15 * time.Second

// waitReady polls GET http://host/v2/ until it answers 200 OK.
func waitReady(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	url := "http://" + host + "/v2/"
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: status %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry at %s not ready: %w (last error: %v)", host, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
