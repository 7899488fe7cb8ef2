//go:build linux

package fuse_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkRoundTrip measures tiny requests through each transport, with
// the client pinned to each CPU in turn (FUSETEST_BENCH_CPUS, e.g. "0,1",
// defaults to every allowed CPU):
//
//	getattr        fstat(2) of an open file with zero attribute validity:
//	               one GETATTR round trip
//	create-unlink  open(O_CREAT|O_EXCL), close, unlink: LOOKUP, CREATE,
//	               FLUSH, RELEASE, UNLINK (and what else the kernel sends)
//	getattr-x4     four clients on the same CPU doing getattr at once:
//	               ns/op is wall time per GETATTR (throughput)
//
// Besides ns/op it reports the serving process's CPU time per op
// (daemon-us/op, all its threads, from schedstat), its context switches per
// op (daemon-cs/op) and the client thread's (client-cs/op).
//
//	go test -run '^$' -bench RoundTrip -benchtime 20000x
func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range []struct {
		name string
		opts serverOptions
	}{
		{"dev", serverOptions{Transport: "dev"}},
		{"dev+poll", serverOptions{Transport: "dev", Poll: true}},
		{"uring", serverOptions{Transport: "uring"}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			if tr.opts.Transport == "uring" {
				requireFUSE(b)
				setEnableURing(b, true)
			}
			s, err := launch(b, tr.opts)
			if err != nil {
				b.Skipf("cannot serve %s: %v", tr.name, err)
			}
			for _, op := range []struct {
				name string
				run  func(b *testing.B, s *testServer, cpu int) error
			}{
				{"getattr", benchGetattr},
				{"create-unlink", benchCreateUnlink},
				{"getattr-x4", benchGetattrX4},
			} {
				for _, cpu := range benchCPUs(b) {
					b.Run(fmt.Sprintf("%s/cpu%d", op.name, cpu), func(b *testing.B) {
						var err error
						onCPU(cpu, func() error {
							d0 := daemonUsage(s.cmd.Process.Pid)
							c0 := threadSwitches()
							b.ResetTimer()
							err = op.run(b, s, cpu)
							b.StopTimer()
							c1 := threadSwitches()
							d1 := daemonUsage(s.cmd.Process.Pid)
							n := float64(b.N)
							b.ReportMetric(float64(d1.cpuNs-d0.cpuNs)/1e3/n, "daemon-us/op")
							b.ReportMetric(float64(d1.switches-d0.switches)/n, "daemon-cs/op")
							b.ReportMetric(float64(c1-c0)/n, "client-cs/op")
							return nil
						})
						if err != nil {
							b.Fatal(err)
						}
					})
				}
			}
			if err := s.unmount(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func benchGetattr(b *testing.B, s *testServer, cpu int) error {
	return fstats(s, b.N)
}

func fstats(s *testServer, n int) error {
	fd, err := unix.Open(s.path(bigName), unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	for i := 0; i < n; i++ {
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
	}
	return nil
}

// benchGetattrX4 runs getattr on the calling thread and three more pinned
// to the same CPU, b.N GETATTRs in all.
func benchGetattrX4(b *testing.B, s *testServer, cpu int) error {
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- onCPU(cpu, func() error { return fstats(s, b.N/4) }) }()
	}
	err := fstats(s, b.N-3*(b.N/4))
	for range 3 {
		if e := <-errs; e != nil {
			err = e
		}
	}
	return err
}

func benchCreateUnlink(b *testing.B, s *testServer, cpu int) error {
	name := s.path("bench-file")
	for i := 0; i < b.N; i++ {
		fd, err := unix.Open(name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if err := unix.Close(fd); err != nil {
			return err
		}
		if err := unix.Unlink(name); err != nil {
			return err
		}
	}
	return nil
}

func benchCPUs(b *testing.B) []int {
	v := os.Getenv("FUSETEST_BENCH_CPUS")
	if v == "" {
		var set unix.CPUSet
		unix.SchedGetaffinity(0, &set)
		var out []int
		for i := 0; i < runtime.NumCPU()*4 && i < 1024; i++ {
			if set.IsSet(i) {
				out = append(out, i)
			}
		}
		return out
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("FUSETEST_BENCH_CPUS=%q: %v", v, err)
		}
		out = append(out, n)
	}
	return out
}

type usage struct {
	cpuNs    int64
	switches int64
}

// daemonUsage sums CPU time and context switches over every thread of a
// process.
func daemonUsage(pid int) usage {
	var u usage
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		if data, err := os.ReadFile(task + "/schedstat"); err == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				u.cpuNs += ns
			}
		}
		u.switches += switchesIn(task + "/status")
	}
	return u
}

// threadSwitches is the calling thread's context switches so far.
func threadSwitches() int64 { return switchesIn("/proc/thread-self/status") }

func switchesIn(status string) int64 {
	data, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	var n int64
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}
