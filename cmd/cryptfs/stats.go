package main

import (
	"encoding/json"
	"fmt"
	"io"
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
		Long: `stats shows, per FUSE opcode, the requests the kernel sent to the daemon
(upcalls), how many failed, how many the eBPF fast path answered in the
kernel instead (fast-path hits; always 0 outside the ebpf tier), and the
upcalls' latency (p50, p99). Upcalls are counted by the kernel's fuse
tracepoints where it has them (root), else by the daemon itself.

--watch[=INTERVAL] (or --watch INTERVAL MOUNTPOINT; default 1s) prints the
totals once, then every INTERVAL what happened during it, each block
headed by the time, until interrupted.`,
		Args: func(c *cobra.Command, a []string) error {
			// "--watch 1s MOUNTPOINT": pflag leaves the interval among the
			// arguments, since --watch alone means 1s.
			if len(a) == 2 && c.Flags().Changed("watch") {
				if d, err := time.ParseDuration(a[0]); err == nil {
					watch = d
					return nil
				}
			}
			return args(1)(c, a)
		},
		RunE: func(c *cobra.Command, a []string) error {
			mnt := a[len(a)-1]
			if c.Flags().Changed("watch") && watch <= 0 {
				return withCode(exitUsage, "--watch needs a positive interval")
			}
			d, err := findDaemon(mnt)
			if err != nil {
				return err
			}
			prev, err := control.StatsOf(d.Mount)
			if err != nil {
				return withCode(exitNotMounted, "%s: %v", mnt, err)
			}
			if err := printStatsAs(e.stdout, prev, asJSON, ""); err != nil || watch <= 0 {
				return err
			}
			for {
				time.Sleep(watch)
				cur, err := control.StatsOf(d.Mount)
				if err != nil {
					return withCode(exitNotMounted, "%s: %v", mnt, err)
				}
				head := fmt.Sprintf("%s  (+%v)", time.Now().Format("2006-01-02 15:04:05"), watch)
				fmt.Fprintln(e.stdout)
				if err := printStatsAs(e.stdout, deltaStats(prev, cur), asJSON, head); err != nil {
					return err
				}
				prev = cur
			}
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().DurationVar(&watch, "watch", 0, "repeat every `INTERVAL` (e.g. 1s), printing what changed")
	c.Flags().Lookup("watch").NoOptDefVal = "1s"
	return c
}

// printStatsAs prints st as a table (head, if any, above it) or as JSON
// (head as its "time" field).
func printStatsAs(w io.Writer, st control.Stats, asJSON bool, head string) error {
	if asJSON {
		v := any(st)
		if head != "" {
			v = struct {
				Time string `json:"time"`
				control.Stats
			}{time.Now().Format(time.RFC3339), st}
		}
		return json.NewEncoder(w).Encode(v)
	}
	if head != "" {
		fmt.Fprintf(w, "== %s\n", head)
	}
	printStats(w, st)
	return nil
}

// deltaStats is what happened between two snapshots: every counter and
// histogram bucket of cur minus prev; opcodes without change are left
// out.
func deltaStats(prev, cur control.Stats) control.Stats {
	before := map[string]control.OpFigures{}
	for _, o := range prev.Ops {
		before[o.Opcode] = o
	}
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0 // a counter that restarted
		}
		return a - b
	}
	out := control.Stats{Source: cur.Source}
	for _, o := range cur.Ops {
		p := before[o.Opcode]
		d := control.OpFigures{Opcode: o.Opcode, Upcalls: sub(o.Upcalls, p.Upcalls), Daemon: sub(o.Daemon, p.Daemon),
			Errors: sub(o.Errors, p.Errors), FastHits: sub(o.FastHits, p.FastHits)}
		for i, n := range o.Histogram {
			var was uint64
			if i < len(p.Histogram) {
				was = p.Histogram[i]
			}
			d.Histogram = append(d.Histogram, sub(n, was))
		}
		if d.Upcalls != 0 || d.Daemon != 0 || d.Errors != 0 || d.FastHits != 0 {
			out.Ops = append(out.Ops, d)
		}
	}
	return out
}

func printStats(w io.Writer, st control.Stats) {
	ops := append([]control.OpFigures(nil), st.Ops...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Upcalls > ops[j].Upcalls })
	if len(ops) == 0 {
		fmt.Fprintln(w, "(no requests)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "opcode\tupcalls\terrors\tfast-path hits\tp50\tp99\t\n")
	for _, o := range ops {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t\n", o.Opcode, o.Upcalls, o.Errors, o.FastHits,
			percentile(o.Histogram, 0.50), percentile(o.Histogram, 0.99))
	}
	tw.Flush()
	fmt.Fprintf(w, "(upcalls counted by the %s)\n", st.Source)
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
