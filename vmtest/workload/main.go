package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: workload meta [flags]        the metadata workload and its table
       workload coherence [flags]   the coherence stress
       workload reuse [flags]       facts of deleted files never show on new ones
       workload untar [flags]       requests of tar -xf and rm -rf per tier
       workload bench [flags]       make bench's workloads in small, per tier, and their table
       workload CMD -h              the flags of CMD`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string, io.Writer) error{
		"meta":             runMeta,
		"coherence":        runCoherence,
		"reuse":            runReuse,
		"untar":            runUntar,
		"bench":            runBench,
		"coherence-writer": runWriter, // internal: one writer process
		"coherence-reader": runReader, // internal: one reader process
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "workload %s: FAIL: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
