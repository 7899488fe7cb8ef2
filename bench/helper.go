package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The helpers are the timed parts of some workloads. They run as child
// processes of the benchmark (`cryptfs-bench helper NAME ...`), never in
// the benchmark process itself, so a hung mount can only hang a child the
// benchmark can abort, and each measures its own work with the monotonic
// clock (process start-up is not timed). They use raw system calls: no Go
// poller, no buffering, one system call per operation, like the C tools.
// Each prints one JSON helperResult on standard output.

// helperResult is what a helper reports.
type helperResult struct {
	// Runs holds the wall time of each timed run, CPU the helper's own CPU
	// time (user and system) during it.
	Runs []time.Duration `json:"runs_ns"`
	CPU  []time.Duration `json:"cpu_ns"`
	// Bytes and Ops are the work of one run.
	Bytes int64 `json:"bytes"`
	Ops   int64 `json:"ops"`
}

// stopwatch measures a run's wall time and the helper's CPU time.
type stopwatch struct {
	wall time.Time
	cpu  time.Duration
}

func startWatch() stopwatch { return stopwatch{time.Now(), selfCPU()} }

// stop appends the run's figures to r.
func (w stopwatch) stop(r *helperResult) {
	r.Runs = append(r.Runs, time.Since(w.wall))
	r.CPU = append(r.CPU, selfCPU()-w.cpu)
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// helpers maps a helper name to its implementation.
var helpers = map[string]func(args []string) (helperResult, error){
	"write":   helperWrite,
	"read":    helperRead,
	"stat":    helperStat,
	"mkfiles": helperMkfiles,
}

// runHelper runs the helper named by args[0] and returns the exit status.
func runHelper(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: cryptfs-bench helper write|read|stat|mkfiles [flags]")
		return 2
	}
	h, ok := helpers[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unknown helper %q\n", args[0])
		return 2
	}
	res, err := h(args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "helper %s: %v\n", args[0], err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "helper %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// streamBlock is the size of each read and write of the streaming
// helpers, the size cp, dd bs=1M and most copy tools use.
const streamBlock = 1 << 20

// helperWrite writes -size bytes of pseudo-random data to a new -file in
// 1 MiB writes, fsyncs and closes it. The data is incompressible and the
// same in every run (a fixed seed), and generated before the clock starts.
func helperWrite(args []string) (helperResult, error) {
	fl := flag.NewFlagSet("write", flag.ContinueOnError)
	file := fl.String("file", "", "file to create")
	size := fl.Int64("size", 0, "bytes to write")
	if err := fl.Parse(args); err != nil {
		return helperResult{}, err
	}
	if *file == "" || *size <= 0 {
		return helperResult{}, errors.New("need -file and a positive -size")
	}
	buf := make([]byte, streamBlock)
	rng := rand.NewChaCha8([32]byte{'c', 'r', 'y', 'p', 't', 'f', 's'})
	rng.Read(buf)
	watch := startWatch()
	fd, err := unix.Open(*file, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return helperResult{}, fmt.Errorf("create %s: %w", *file, err)
	}
	var done int64
	for done < *size {
		chunk := buf[:min(int64(len(buf)), *size-done)]
		n, err := unix.Write(fd, chunk)
		if err != nil {
			unix.Close(fd)
			return helperResult{}, fmt.Errorf("write %s at %d: %w", *file, done, err)
		}
		done += int64(n)
		// Rotate the block so no two megabytes of the file are equal.
		buf[done%streamBlock] ^= byte(done >> 20)
	}
	if err := unix.Fsync(fd); err != nil {
		unix.Close(fd)
		return helperResult{}, fmt.Errorf("fsync %s: %w", *file, err)
	}
	if err := unix.Close(fd); err != nil {
		return helperResult{}, fmt.Errorf("close %s: %w", *file, err)
	}
	res := helperResult{Bytes: done, Ops: done / streamBlock}
	watch.stop(&res)
	return res, nil
}

// helperRead reads -file to its end in 1 MiB reads.
func helperRead(args []string) (helperResult, error) {
	fl := flag.NewFlagSet("read", flag.ContinueOnError)
	file := fl.String("file", "", "file to read")
	if err := fl.Parse(args); err != nil {
		return helperResult{}, err
	}
	if *file == "" {
		return helperResult{}, errors.New("need -file")
	}
	buf := make([]byte, streamBlock)
	watch := startWatch()
	fd, err := unix.Open(*file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return helperResult{}, fmt.Errorf("open %s: %w", *file, err)
	}
	defer unix.Close(fd)
	var done, ops int64
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return helperResult{}, fmt.Errorf("read %s at %d: %w", *file, done, err)
		}
		if n == 0 {
			break
		}
		done += int64(n)
		ops++
	}
	res := helperResult{Bytes: done, Ops: ops}
	watch.stop(&res)
	return res, nil
}

// helperStat lstats every path of a NUL-separated -list, relative to
// -root, -runs times; a failed lstat is an error (the tree is incomplete).
func helperStat(args []string) (helperResult, error) {
	fl := flag.NewFlagSet("stat", flag.ContinueOnError)
	list := fl.String("list", "", "NUL-separated paths relative to -root")
	root := fl.String("root", "", "directory the paths are relative to")
	runs := fl.Int("runs", 1, "timed runs")
	if err := fl.Parse(args); err != nil {
		return helperResult{}, err
	}
	if *list == "" || *root == "" || *runs < 1 {
		return helperResult{}, errors.New("need -list, -root and -runs >= 1")
	}
	paths, err := readList(*list)
	if err != nil {
		return helperResult{}, err
	}
	dirfd, err := unix.Open(*root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return helperResult{}, fmt.Errorf("open %s: %w", *root, err)
	}
	defer unix.Close(dirfd)
	res := helperResult{Ops: int64(len(paths))}
	var st unix.Stat_t
	for range *runs {
		watch := startWatch()
		for _, p := range paths {
			if err := unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return helperResult{}, fmt.Errorf("lstat %s: %w", filepath.Join(*root, p), err)
			}
		}
		watch.stop(&res)
	}
	return res, nil
}

// helperMkfiles creates -n files of -size bytes each in -dir (which must
// exist): open with O_CREAT|O_EXCL, one write, close.
func helperMkfiles(args []string) (helperResult, error) {
	fl := flag.NewFlagSet("mkfiles", flag.ContinueOnError)
	dir := fl.String("dir", "", "existing directory to fill")
	n := fl.Int("n", 10000, "number of files")
	size := fl.Int("size", 1024, "bytes per file")
	if err := fl.Parse(args); err != nil {
		return helperResult{}, err
	}
	if *dir == "" || *n < 1 || *size < 0 {
		return helperResult{}, errors.New("need -dir, -n >= 1 and -size >= 0")
	}
	data := bytes.Repeat([]byte("small file content\n"), *size/19+1)[:*size]
	dirfd, err := unix.Open(*dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return helperResult{}, fmt.Errorf("open %s: %w", *dir, err)
	}
	defer unix.Close(dirfd)
	watch := startWatch()
	for i := range *n {
		name := fmt.Sprintf("file-%05d.txt", i)
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return helperResult{}, fmt.Errorf("create %s: %w", filepath.Join(*dir, name), err)
		}
		if len(data) > 0 {
			if _, err := unix.Write(fd, data); err != nil {
				unix.Close(fd)
				return helperResult{}, fmt.Errorf("write %s: %w", filepath.Join(*dir, name), err)
			}
		}
		if err := unix.Close(fd); err != nil {
			return helperResult{}, fmt.Errorf("close %s: %w", filepath.Join(*dir, name), err)
		}
	}
	res := helperResult{Bytes: int64(*n) * int64(*size), Ops: int64(*n)}
	watch.stop(&res)
	return res, nil
}

// readList reads a NUL-separated list of paths.
func readList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	var paths []string
	for _, p := range bytes.Split(data, []byte{0}) {
		if len(p) > 0 {
			paths = append(paths, string(p))
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("list %s is empty", path)
	}
	return paths, nil
}
