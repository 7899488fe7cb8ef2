package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procSample is what /proc says about a daemon at one moment.
type procSample struct {
	CPU time.Duration // user+system time of all its threads
	// Switches counts the times its threads were put on a CPU (the third
	// schedstat field): each wakeup of a sleeping thread is one.
	Switches int64
	// Sleeps counts the times its threads gave up the CPU to wait
	// (voluntary_ctxt_switches of /proc/PID/task/*/status): a thread that
	// yields or is preempted is put on a CPU again without having slept.
	Sleeps int64
	PeakKB int64 // VmHWM: peak resident set since start or the last resetPeakRSS
	RSSKB  int64 // VmRSS
}

// readProc samples process pid.
func readProc(pid int) (procSample, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	var s procSample
	if s.PeakKB, err = statusField(status, "VmHWM"); err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if s.RSSKB, err = statusField(status, "VmRSS"); err != nil {
		return procSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	if s.CPU, s.Switches, err = threadsCPU(pid); err != nil {
		return procSample{}, err
	}
	s.Sleeps = threadsSleeps(pid)
	return s, nil
}

// statusField returns the value in kB of a "Name:   123 kB" line of
// /proc/PID/status.
func statusField(status []byte, name string) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok || string(k) != name {
			continue
		}
		f := bytes.Fields(v)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("malformed %s line %q", name, line)
		}
		return strconv.ParseInt(string(f[0]), 10, 64)
	}
	return 0, fmt.Errorf("no %s in /proc status", name)
}

// threadsCPU sums the CPU time of the threads of pid from
// /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat only has clock
// ticks of 10 ms, too coarse for the short workloads), and the times they
// were put on a CPU. Threads that exited are not counted; the Go runtime
// keeps its threads.
func threadsCPU(pid int) (time.Duration, int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, fmt.Errorf("no threads of pid %d in /proc", pid)
	}
	var total time.Duration
	var switches int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns, n, err := parseSchedstat(data)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", t, err)
		}
		total += ns
		switches += n
	}
	return total, switches, nil
}

// threadsSleeps sums voluntary_ctxt_switches over the threads of pid
// (threads that exit meanwhile are skipped).
func threadsSleeps(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		n += voluntarySwitches(data)
	}
	return n
}

// voluntarySwitches returns the voluntary_ctxt_switches of a
// /proc/PID/status text (0 if it has none).
func voluntarySwitches(status []byte) int64 {
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("voluntary_ctxt_switches:")); ok {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// parseSchedstat returns the first and third fields of a schedstat line:
// time spent on the CPU, in nanoseconds, and the times the thread was put
// on a CPU.
func parseSchedstat(data []byte) (time.Duration, int64, error) {
	f := bytes.Fields(data)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("malformed schedstat %q", data)
	}
	ns, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed schedstat %q: %w", data, err)
	}
	n, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed schedstat %q: %w", data, err)
	}
	return time.Duration(ns), n, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+),
// so the peak measured after a workload is that workload's peak.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// dropCaches writes back dirty data and drops the page, dentry and inode
// caches of every file system, so the next access reads from the disk.
func dropCaches() error {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// loadAverage returns the 1-minute load average (0 if unreadable): the
// machine is shared, so every figure is recorded with the load it ran under.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := bytes.Fields(data)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(string(f[0]), 64)
	return v
}
