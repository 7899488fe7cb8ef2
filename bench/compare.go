package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// runCompare is `cryptfs-bench compare [-ignore OPS] OLD.json NEW.json`: it
// prints, per workload and per cryptfs system present in both runs, the
// requests that reached the daemon in each run and every opcode whose count
// differs. It is how a refactoring shows that it left the request counts
// alone (issue 12: the same counts in bench-quick for each tier). Opcodes
// named in -ignore (default SETATTR: the writeback cache's mtime/ctime
// flushes depend on timing, and vary between two runs of one binary) are
// listed but do not count as a difference, and neither does a difference of
// at most one request or 0.1% of the opcode's count (two runs of one binary
// here differ that much: a streaming write split into one more WRITE, one
// more GETATTR of a parent whose attributes expired), unless one run does
// not send the opcode at all. Exit status 1 when a
// counted difference exists, 2 on bad input.
func runCompare(args []string, stdout, stderr io.Writer) int {
	ignore := "SETATTR"
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if args[0] == "-ignore" && len(args) > 1 {
			ignore, args = args[1], args[2:]
			continue
		}
		fmt.Fprintf(stderr, "cryptfs-bench compare: unknown flag %s\n", args[0])
		return 2
	}
	if len(args) != 2 {
		fmt.Fprintf(stderr, "usage: cryptfs-bench compare [-ignore OP,OP] OLD.json NEW.json\n")
		return 2
	}
	old, err := loadResults(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "cryptfs-bench compare: %v\n", err)
		return 2
	}
	cur, err := loadResults(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "cryptfs-bench compare: %v\n", err)
		return 2
	}
	var ign []string
	if ignore != "" {
		ign = strings.Split(ignore, ",")
	}
	d := compareUpcalls(old, cur, ign)
	fmt.Fprintf(stdout, "requests that reached the daemon: %s (%s) -> %s (%s); ignored: %s\n\n",
		args[0], old.Host.Cryptfs, args[1], cur.Host.Cryptfs, ignore)
	fmt.Fprintf(stdout, "| workload | system | old | new | differences |\n|---|---|---:|---:|---|\n")
	for _, r := range d.rows {
		fmt.Fprintf(stdout, "| %s | %s | %d | %d | %s |\n", r.workload, r.system, r.old, r.new, r.diff)
	}
	fmt.Fprintf(stdout, "\n%d cells compared, %d differ beyond the ignored opcodes\n", len(d.rows), d.differing)
	if d.differing > 0 {
		return 1
	}
	return 0
}

func loadResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

type compareRow struct {
	workload, system string
	old, new         uint64
	diff             string
}

type comparison struct {
	rows      []compareRow
	differing int
}

// compareUpcalls pairs the cryptfs cells of two runs by workload and system.
func compareUpcalls(old, cur *results, ignore []string) comparison {
	var c comparison
	prev := map[string]workloadResult{}
	for _, w := range old.Workloads {
		prev[w.ID] = w
	}
	for _, w := range cur.Workloads {
		pw, ok := prev[w.ID]
		if !ok {
			continue
		}
		var systems []string
		for s := range w.Cells {
			if strings.HasPrefix(s, "cryptfs-") && pw.Cells[s] != nil && w.Cells[s] != nil {
				systems = append(systems, s)
			}
		}
		slices.Sort(systems)
		for _, s := range systems {
			a, b := pw.Cells[s].Upcalls, w.Cells[s].Upcalls
			ops := map[string]bool{}
			for op := range a {
				ops[op] = true
			}
			for op := range b {
				ops[op] = true
			}
			var names []string
			for op := range ops {
				names = append(names, op)
			}
			slices.Sort(names)
			var parts []string
			counted := false
			for _, op := range names {
				x, y := a[op].Upcalls, b[op].Upcalls
				if x == y {
					continue
				}
				mark := ""
				if slices.Contains(ignore, op) {
					mark = " (ignored)"
				} else if withinNoise(x, y) {
					mark = " (noise)"
				} else {
					counted = true
				}
				parts = append(parts, fmt.Sprintf("%s %d->%d%s", op, x, y, mark))
			}
			diff := "same"
			if len(parts) > 0 {
				diff = strings.Join(parts, ", ")
			}
			if counted {
				c.differing++
			}
			c.rows = append(c.rows, compareRow{w.ID, s, a.total(), b.total(), diff})
		}
	}
	return c
}

// withinNoise reports whether two counts of one opcode differ by at most one
// request or 0.1% of the larger. An opcode that one run does not send at
// all is never noise.
func withinNoise(x, y uint64) bool {
	if x == 0 || y == 0 {
		return false
	}
	d := max(x, y) - min(x, y)
	return d <= 1 || d*1000 <= max(x, y)
}
