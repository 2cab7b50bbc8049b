package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
)

// printFetchSummary writes a table of the layers of a fetch, what each
// had in the cache before and what was fetched, and a total line.
func printFetchSummary(w io.Writer, runs []*layerRun, took time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tSIZE\tFETCHED\tCACHED BEFORE\tTIME\tSTATE")
	var size, fetched, cached int64
	complete := 0
	for _, r := range runs {
		size += r.layer.Size
		fetched += r.fetched.Load()
		cached += r.cached
		if r.state() == "complete" {
			complete++
		}
		t := "-"
		if r.started {
			t = r.took.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.layer.Label()), bytesSize(r.layer.Size),
			bytesSize(r.fetched.Load()), bytesSize(r.cached), t, r.state())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "total: %d of %d layers complete, %s: %s fetched, %s cached before, in %s\n",
		complete, len(runs), bytesSize(size), bytesSize(fetched), bytesSize(cached), took.Round(10*time.Millisecond))
	return err
}

// bytesSize formats n bytes in binary units (256MiB).
func bytesSize(n int64) string { return units.BytesSize(float64(n)) }
