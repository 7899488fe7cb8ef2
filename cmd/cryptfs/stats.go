package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/internal/control"
)

func newStats(e env) *cobra.Command {
	var (
		asJSON bool
		watch  time.Duration
	)
	c := &cobra.Command{
		Use:   "stats [flags] MOUNTPOINT",
		Short: "Show requests per FUSE opcode that reached the daemon, latency and fast-path hits",
		Args:  args(1),
		RunE: func(c *cobra.Command, a []string) error {
			abs, err := filepath.Abs(a[0])
			if err != nil {
				return err
			}
			dev, err := control.Device(abs)
			if err != nil {
				return withCode(exitNotMounted, "%s is not a cryptfs mount", abs)
			}
			for {
				st, err := control.GetStats(dev)
				if err != nil {
					return withCode(exitNotMounted, "%s: %v", abs, err)
				}
				if asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(st); err != nil {
						return err
					}
				} else {
					printStats(e, st)
				}
				if watch <= 0 {
					return nil
				}
				time.Sleep(watch)
				fmt.Fprintln(e.stdout)
			}
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().DurationVar(&watch, "watch", 0, "repeat every `INTERVAL` (e.g. 1s)")
	c.Flags().Lookup("watch").NoOptDefVal = "1s"
	return c
}

func printStats(e env, st control.Stats) {
	ops := append([]control.OpFigures(nil), st.Ops...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Upcalls > ops[j].Upcalls })
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "opcode\tupcalls\terrors\tfast-path hits\tp50\tp99\t\n")
	for _, o := range ops {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\t\n", o.Opcode, o.Upcalls, o.Errors, o.FastHits,
			percentile(o.Histogram, 0.50), percentile(o.Histogram, 0.99))
	}
	w.Flush()
	fmt.Fprintf(e.stdout, "(upcalls counted by the %s)\n", st.Source)
}

// percentile returns the upper bound of the log2 bucket holding quantile q.
func percentile(hist []uint64, q float64) string {
	var total uint64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return "-"
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i, n := range hist {
		seen += n
		if seen >= want && n > 0 || seen >= total {
			return "<" + time.Duration(uint64(1)<<(i+1)).String()
		}
	}
	return "-"
}
