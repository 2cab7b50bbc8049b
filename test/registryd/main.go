// Command registryd runs a real CNCF Distribution registry in-process on
// 127.0.0.1 for the demo and the benchmarks, printing its host:port on the
// first line of stdout and serving until SIGINT or SIGTERM.
//
//	go run ./test/registryd -dir /tmp/registry
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

func main() {
	dir := flag.String("dir", "", "storage directory (default: a temporary one, removed on exit)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	reg, err := registrytest.StartNoTest(ctx, *dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registryd:", err)
		os.Exit(1)
	}
	fmt.Println(reg.Host())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	if err := reg.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "registryd:", err)
		os.Exit(1)
	}
}
