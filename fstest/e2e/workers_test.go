package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Worker processes for the reliability tests. The concurrency and crash tests run their
// writers, readers and renamers as separate processes, as real applications are: the test
// binary re-executed with workerEnv set to a JSON workerSpec. A worker writes JSON events,
// one per line, to its standard output, and stops when its work is done or, for workers
// that run until told, when its standard input is closed.

const workerEnv = "FSTEST_RELIABILITY_WORKER"

// workerSpec says what one worker does. Kind selects the fields that matter.
type workerSpec struct {
	Kind string `json:"kind"`
	ID   int    `json:"id"`
	Seed uint64 `json:"seed"`
	N    int    `json:"n"` // iterations

	File string `json:"file,omitempty"` // the shared file
	Dir  string `json:"dir,omitempty"`  // the directory worked in

	// disjoint writers: every range of the file with Owner == ID, Passes times.
	Ranges []byteRange `json:"ranges,omitempty"`
	Passes int         `json:"passes,omitempty"`
	// overlap writers and readers: the region [RegionOff, RegionOff+RegionLen) shared by
	// Writers writers.
	RegionOff int64 `json:"region_off,omitempty"`
	RegionLen int64 `json:"region_len,omitempty"`
	Writers   int   `json:"writers,omitempty"`
	// readers and writers: use O_DIRECT (served by the daemon, not the page cache).
	Direct bool `json:"direct,omitempty"`
	// readers of the append file, rename workers.
	Files []string `json:"files,omitempty"`
}

// byteRange is a range of the shared file owned by one disjoint writer.
type byteRange struct {
	Off   int64 `json:"off"`
	Len   int64 `json:"len"`
	Owner int   `json:"owner"`
}

// workerEvent is one line a worker prints.
type workerEvent struct {
	Event string `json:"event"` // "error", "done", or kind-specific (crash: "begin", "synced", ...)
	Msg   string `json:"msg,omitempty"`
	Name  string `json:"name,omitempty"`
	To    string `json:"to,omitempty"`
	Size  int64  `json:"size,omitempty"`
	Sum   string `json:"sum,omitempty"`
	Ops   int    `json:"ops,omitempty"`
}

func init() {
	if raw, ok := os.LookupEnv(workerEnv); ok {
		os.Exit(workerMain(raw))
	}
}

// workerOut serialises a worker's events.
type workerOut struct {
	mu  sync.Mutex
	enc *json.Encoder
	n   int // errors reported
}

func (w *workerOut) emit(e workerEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.Event == "error" {
		w.n++
		if w.n > 20 {
			return
		}
	}
	w.enc.Encode(e)
}

func (w *workerOut) errorf(format string, args ...any) {
	w.emit(workerEvent{Event: "error", Msg: fmt.Sprintf(format, args...)})
}

func workerMain(raw string) int {
	out := &workerOut{enc: json.NewEncoder(os.Stdout)}
	var spec workerSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		out.errorf("decode spec: %v", err)
		return 0
	}
	// Workers that run until told stop when the parent closes standard input.
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	ops := 0
	switch spec.Kind {
	case "disjoint":
		ops = disjointWriter(spec, out)
	case "overlap":
		ops = overlapWriter(spec, out)
	case "append":
		ops = appendWriter(spec, out)
	case "reader":
		ops = sharedReader(spec, out, &stop)
	case "append-reader":
		ops = appendReader(spec, out, &stop)
	case "renamer":
		ops = renamer(spec, out, &stop)
	case "rename-reader":
		ops = renameReader(spec, out, &stop)
	case "crash":
		ops = crashWriter(spec, out)
	default:
		out.errorf("unknown worker kind %q", spec.Kind)
	}
	out.emit(workerEvent{Event: "done", Ops: ops})
	return 0
}

// newRand returns a PRNG for seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, ^seed)) }

// crc32c is the CRC-32C (Castagnoli) of b.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// mix derives a seed from a seed and two numbers (splitmix64 finaliser).
func mix(seed uint64, a, b int64) uint64 {
	z := seed + uint64(a)*0x9e3779b97f4a7c15 + uint64(b)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rangeData is what pass p writes into range r of the disjoint region.
func rangeData(seed uint64, r byteRange, pass int) []byte {
	return randBytes(mix(seed, r.Off, int64(pass)), int(r.Len))
}

// openShared opens the shared file for writing, with O_DIRECT if spec.Direct: each write
// is then one WRITE request to the daemon at its own offset and length, bypassing the
// page cache that otherwise merges writes into whole pages. (FUSE does not require
// alignment for O_DIRECT.)
func openShared(spec workerSpec) (*os.File, error) {
	flags := os.O_RDWR
	if spec.Direct {
		flags |= unix.O_DIRECT
	}
	return os.OpenFile(spec.File, flags, 0)
}

func disjointWriter(spec workerSpec, out *workerOut) int {
	f, err := openShared(spec)
	if err != nil {
		out.errorf("open: %v", err)
		return 0
	}
	defer f.Close()
	var mine []byteRange
	for _, r := range spec.Ranges {
		if r.Owner == spec.ID {
			mine = append(mine, r)
		}
	}
	rng := newRand(mix(spec.Seed, int64(spec.ID), -1))
	ops := 0
	for pass := 0; pass < spec.Passes; pass++ {
		rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
		for _, r := range mine {
			if _, err := f.WriteAt(rangeData(spec.Seed, r, pass), r.Off); err != nil {
				out.errorf("pass %d: write %d bytes at %d: %v", pass, r.Len, r.Off, err)
				return ops
			}
			ops++
			if rng.IntN(50) == 0 {
				if err := f.Sync(); err != nil {
					out.errorf("fsync: %v", err)
				}
			}
		}
	}
	if err := f.Sync(); err != nil {
		out.errorf("fsync: %v", err)
	}
	return ops
}

// An overlap writer's write s fills [off, off+len) (8-byte aligned) with words that name
// the writer, the write and the word's own position, so a reader can tell for every word
// who wrote it and whether it is where it belongs.
func overlapWord(w, s int, pos int64) uint64 {
	return uint64(w)<<56 | uint64(s)<<32 | uint64(pos/8)&0xffffffff
}

// overlapWrite is write s of writer w.
func overlapWrite(spec workerSpec, w, s int) (off, n int64) {
	rng := newRand(mix(spec.Seed, int64(w), int64(s)))
	words := spec.RegionLen / 8
	n = 1 + rng.Int64N(min(words, 3*512))
	if rng.IntN(3) == 0 { // whole blocks
		n = 512 * (1 + rng.Int64N(3))
		off = spec.RegionOff + 4096*rng.Int64N(max(1, (spec.RegionLen-n*8)/4096))
		return off, n * 8
	}
	off = spec.RegionOff + 8*rng.Int64N(words-n+1)
	return off, n * 8
}

func overlapWriter(spec workerSpec, out *workerOut) int {
	f, err := openShared(spec)
	if err != nil {
		out.errorf("open: %v", err)
		return 0
	}
	defer f.Close()
	for s := 0; s < spec.N; s++ {
		off, n := overlapWrite(spec, spec.ID, s)
		buf := make([]byte, n)
		for i := int64(0); i < n; i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], overlapWord(spec.ID, s, off+i))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			out.errorf("write %d (%d bytes at %d): %v", s, n, off, err)
			return s
		}
	}
	return spec.N
}

// overlapPlan lists every overlap write: [writer][seq] -> {off, len}.
type overlapPlan [][][2]int64

func planOverlap(spec workerSpec) overlapPlan {
	writes := make(overlapPlan, spec.Writers+1)
	for w := 1; w <= spec.Writers; w++ {
		for s := 0; s < spec.N; s++ {
			o, n := overlapWrite(spec, w, s)
			writes[w] = append(writes[w], [2]int64{o, n})
		}
	}
	return writes
}

// overlapCheck checks the words of the overlap region read at off. final requires every
// word to be the last write of its writer that covered it (no lost update).
func overlapCheck(spec workerSpec, writes overlapPlan, data []byte, off int64, final bool) []string {
	type wr = [2]int64
	covers := func(x wr, pos int64) bool { return pos >= x[0] && pos < x[0]+x[1] }
	var errs []string
	for i := 0; i+8 <= len(data) && len(errs) < 10; i += 8 {
		pos := off + int64(i)
		word := binary.LittleEndian.Uint64(data[i:])
		w, s := int(word>>56), int(word>>32&0xffffff)
		if word == 0 {
			if final {
				for ww := 1; ww <= spec.Writers; ww++ {
					for _, x := range writes[ww] {
						if covers(x, pos) {
							errs = append(errs, fmt.Sprintf("word at %d is zero but writer %d wrote it", pos, ww))
							break
						}
					}
				}
			}
			continue
		}
		if w < 1 || w > spec.Writers || s >= spec.N || int64(uint32(word)) != pos/8&0xffffffff || !covers(writes[w][s], pos) {
			errs = append(errs, fmt.Sprintf("word at %d is %#016x: not written there by any writer (torn or misplaced block)", pos, word))
			continue
		}
		if final {
			for later := s + 1; later < spec.N; later++ {
				if covers(writes[w][later], pos) {
					errs = append(errs, fmt.Sprintf("word at %d is from write %d of writer %d, which overwrote it later with write %d (lost update)", pos, s, w, later))
					break
				}
			}
		}
	}
	return errs
}

// Append records: magic, writer, length, sequence number, CRC-32C of the body; then the body.
const appendMagic = 0xc0ffee11

func appendRecord(seed uint64, w, s int) []byte {
	rng := newRand(mix(seed, int64(w), int64(s)))
	body := randBytes(rng.Uint64(), 1+rng.IntN(6000))
	rec := make([]byte, 16, 16+len(body))
	binary.LittleEndian.PutUint32(rec[0:], appendMagic)
	binary.LittleEndian.PutUint16(rec[4:], uint16(w))
	binary.LittleEndian.PutUint16(rec[6:], uint16(len(body)))
	binary.LittleEndian.PutUint32(rec[8:], uint32(s))
	binary.LittleEndian.PutUint32(rec[12:], crc32c(body))
	return append(rec, body...)
}

func appendWriter(spec workerSpec, out *workerOut) int {
	f, err := os.OpenFile(spec.File, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		out.errorf("open: %v", err)
		return 0
	}
	defer f.Close()
	for s := 0; s < spec.N; s++ {
		if _, err := f.Write(appendRecord(spec.Seed, spec.ID, s)); err != nil {
			out.errorf("append %d: %v", s, err)
			return s
		}
	}
	return spec.N
}

// parseAppends checks an append file: whole records only (a partial one may end a file
// read while appenders run), each writer's records in order from 0. It returns the records
// per writer.
func parseAppends(seed uint64, data []byte, writers int, partialTailOK bool) ([]int, []string) {
	count := make([]int, writers+1)
	var errs []string
	for off := 0; off < len(data) && len(errs) < 10; {
		if len(data)-off < 16 {
			if !partialTailOK {
				errs = append(errs, fmt.Sprintf("%d stray bytes at the end (offset %d)", len(data)-off, off))
			}
			break
		}
		h := data[off:]
		magic, w := binary.LittleEndian.Uint32(h), int(binary.LittleEndian.Uint16(h[4:]))
		n, s := int(binary.LittleEndian.Uint16(h[6:])), int(binary.LittleEndian.Uint32(h[8:]))
		if magic != appendMagic || w < 1 || w > writers {
			errs = append(errs, fmt.Sprintf("no record header at offset %d (torn or interleaved append)", off))
			break
		}
		if off+16+n > len(data) {
			if !partialTailOK {
				errs = append(errs, fmt.Sprintf("record at %d cut short", off))
			}
			break
		}
		want := appendRecord(seed, w, s)
		if s != count[w] || !bytes.Equal(data[off:off+16+n], want) {
			errs = append(errs, fmt.Sprintf("record at %d: writer %d record %d, want record %d intact", off, w, s, count[w]))
			break
		}
		count[w]++
		off += 16 + n
	}
	return count, errs
}

// sharedReader reads the shared file until stopped: every read must succeed, and every
// word of the overlap region must be one some writer put there.
func sharedReader(spec workerSpec, out *workerOut, stop *atomic.Bool) int {
	flags := unix.O_RDONLY
	if spec.Direct {
		flags |= unix.O_DIRECT
	}
	fd, err := retry(func() (int, error) { return unix.Open(spec.File, flags|unix.O_CLOEXEC, 0) })
	if err != nil {
		out.errorf("open: %v", err)
		return 0
	}
	defer unix.Close(fd)
	// O_DIRECT needs an aligned buffer: mmap'ed memory is.
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		out.errorf("mmap: %v", err)
		return 0
	}
	rng := newRand(mix(spec.Seed, int64(spec.ID), 7))
	plan := planOverlap(spec)
	ops := 0
	for !stop.Load() {
		off := 4096 * rng.Int64N((spec.RegionOff+spec.RegionLen)/4096)
		n, err := retry(func() (int, error) { return unix.Pread(fd, buf, off) })
		ops++
		if err != nil {
			out.errorf("pread at %d: %v", off, err)
			return ops
		}
		// The part of the read inside the overlap region.
		lo, hi := max(off, spec.RegionOff), min(off+int64(n), spec.RegionOff+spec.RegionLen)
		if lo < hi {
			for _, e := range overlapCheck(spec, plan, buf[lo-off:hi-off], lo, false) {
				out.errorf("read at %d: %s", off, e)
			}
		}
	}
	return ops
}

// appendReader reads the append file from the start until stopped and checks its records.
func appendReader(spec workerSpec, out *workerOut, stop *atomic.Bool) int {
	ops := 0
	for !stop.Load() {
		data, err := os.ReadFile(spec.File)
		ops++
		if err != nil {
			out.errorf("read: %v", err)
			return ops
		}
		if _, errs := parseAppends(spec.Seed, data, spec.Writers, true); len(errs) > 0 {
			out.errorf("append file while appending: %s", strings.Join(errs, "; "))
			return ops
		}
	}
	return ops
}

// Rename workers move the files named Files[i] (content: renameContent(i)) between the
// directories Dir/r0..r3 under names n<i>-<k>, and a subdirectory between the directories.
func renameContent(seed uint64, i int) []byte {
	return append([]byte(fmt.Sprintf("file %d\n", i)), randBytes(mix(seed, int64(i), 3), 5000+i)...)
}

// renamer renames its share of the files (i % workers == ID) until stopped.
func renamer(spec workerSpec, out *workerOut, stop *atomic.Bool) int {
	rng := newRand(mix(spec.Seed, int64(spec.ID), 11))
	where := map[int]string{} // file index -> current path (relative to Dir)
	for i, p := range spec.Files {
		if i%spec.Writers == spec.ID {
			where[i] = p
		}
	}
	var mine []int
	for i := range where {
		mine = append(mine, i)
	}
	ops := 0
	for !stop.Load() && ops < spec.N {
		i := mine[rng.IntN(len(mine))]
		to := fmt.Sprintf("r%d/n%d-%d", rng.IntN(4), i, rng.IntN(3))
		if rng.IntN(4) == 0 {
			to = fmt.Sprintf("r%d/sub/n%d-%d", rng.IntN(4), i, rng.IntN(3))
		}
		err := retry0(func() error { return unix.Rename(spec.Dir+"/"+where[i], spec.Dir+"/"+to) })
		ops++
		switch {
		case err == nil:
			where[i] = to
		case errors.Is(err, unix.ENOENT) && strings.Contains(to+where[i], "/sub/"):
			// The subdirectory moved meanwhile (its mover is worker 0): find the file again.
			if p, ok := findFile(spec.Dir, fmt.Sprintf("n%d-", i)); ok {
				where[i] = p
			}
		default:
			out.errorf("rename %s -> %s: %v", where[i], to, err)
			return ops
		}
		// Worker 0 also moves the subdirectory between the directories.
		if spec.ID == 0 && rng.IntN(5) == 0 {
			if from, ok := findDir(spec.Dir, "sub"); ok {
				to := fmt.Sprintf("r%d/sub", rng.IntN(4))
				if err := retry0(func() error { return unix.Rename(spec.Dir+"/"+from, spec.Dir+"/"+to) }); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
					out.errorf("rename directory %s -> %s: %v", from, to, err)
				}
			}
		}
	}
	return ops
}

// findFile finds the file whose name starts with prefix under dir (relative path).
func findFile(dir, prefix string) (string, bool) {
	for r := 0; r < 4; r++ {
		for _, sub := range []string{"", "/sub"} {
			d := fmt.Sprintf("r%d%s", r, sub)
			names, _ := readNames(dir + "/" + d)
			for _, n := range names {
				if strings.HasPrefix(n, prefix) {
					return d + "/" + n, true
				}
			}
		}
	}
	return "", false
}

// findDir finds the directory called name in one of dir/r0..r3.
func findDir(dir, name string) (string, bool) {
	for r := 0; r < 4; r++ {
		p := fmt.Sprintf("r%d/%s", r, name)
		if st, err := os.Lstat(dir + "/" + p); err == nil && st.IsDir() {
			return p, true
		}
	}
	return "", false
}

// renameReader lists the directories and reads every file it finds until stopped: a name
// may vanish (ENOENT) but whatever opens must be one of the files, whole.
func renameReader(spec workerSpec, out *workerOut, stop *atomic.Bool) int {
	ops := 0
	for !stop.Load() {
		for r := 0; r < 4 && !stop.Load(); r++ {
			for _, sub := range []string{"", "/sub"} {
				d := fmt.Sprintf("%s/r%d%s", spec.Dir, r, sub)
				f, err := openFile(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					if !errors.Is(err, unix.ENOENT) {
						out.errorf("open directory %s: %v", d, err)
					}
					continue
				}
				ents, err := readDirents(f, 4096)
				f.Close()
				if err != nil && !errors.Is(err, unix.ENOENT) {
					out.errorf("list %s: %v", d, err)
					continue
				}
				for _, e := range ents {
					if !strings.HasPrefix(e.name, "n") {
						continue
					}
					var i, k int
					if _, err := fmt.Sscanf(e.name, "n%d-%d", &i, &k); err != nil {
						out.errorf("unexpected name %q in %s", e.name, d)
						continue
					}
					data, err := os.ReadFile(d + "/" + e.name)
					ops++
					if errors.Is(err, os.ErrNotExist) {
						continue
					}
					if err != nil {
						out.errorf("read %s/%s: %v", d, e.name, err)
						continue
					}
					if !bytes.Equal(data, renameContent(spec.Seed, i)) {
						out.errorf("%s/%s: content is not file %d's: %s", d, e.name, i, diffBytes(data, renameContent(spec.Seed, i)))
					}
				}
			}
		}
	}
	return ops
}

// worker is a running worker process.
type worker struct {
	spec   workerSpec
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan workerEvent
	stderr lockedBuffer // written by exec's copier while wait may read it
	done   chan struct{}
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kernelStacks describes where a process's threads are in the kernel
// (state, wchan and stack of each), for a worker that does not finish.
func kernelStacks(pid int) string {
	var sb strings.Builder
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		stat, _ := os.ReadFile(task + "/stat")
		wchan, _ := os.ReadFile(task + "/wchan")
		stack, _ := os.ReadFile(task + "/stack")
		fmt.Fprintf(&sb, "task %s: %s\n  wchan %s\n%s", filepath.Base(task), strings.TrimSpace(string(stat)), wchan, stack)
	}
	return sb.String()
}

// startWorker starts a worker process; it is killed at the end of the test if still
// running.
func startWorker(t *testing.T, spec workerSpec) *worker {
	t.Helper()
	exe, err := os.Executable()
	mustDo(t, err)
	raw, err := json.Marshal(spec)
	mustDo(t, err)
	w := &worker{spec: spec, cmd: exec.Command(exe), events: make(chan workerEvent, 1<<16), done: make(chan struct{})}
	w.cmd.Env = append(os.Environ(), workerEnv+"="+string(raw))
	w.cmd.Stderr = &w.stderr
	w.stdin, err = w.cmd.StdinPipe()
	mustDo(t, err)
	stdout, err := w.cmd.StdoutPipe()
	mustDo(t, err)
	mustDo(t, w.cmd.Start())
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e workerEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = workerEvent{Event: "error", Msg: fmt.Sprintf("bad event %q", sc.Text())}
			}
			w.events <- e
		}
		w.cmd.Wait()
		close(w.events)
	}()
	t.Cleanup(func() {
		w.stdin.Close()
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			w.cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// stop tells a worker that runs until told to finish.
func (w *worker) stop() { w.stdin.Close() }

// wait waits for the worker to exit and returns its events; it fails the test on a
// timeout (killing the worker) or when the worker did not finish normally.
func (w *worker) wait(t *testing.T, timeout time.Duration) []workerEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var evs []workerEvent
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				if len(evs) == 0 || evs[len(evs)-1].Event != "done" {
					t.Errorf("worker %s %d did not finish (%v); stderr:\n%s", w.spec.Kind, w.spec.ID, w.cmd.ProcessState, w.stderr.String())
				}
				return evs
			}
			evs = append(evs, e)
		case <-ctx.Done():
			stacks := kernelStacks(w.cmd.Process.Pid)
			w.cmd.Process.Kill()
			t.Fatalf("worker %s %d still running after %v (hung in the filesystem?); stderr:\n%s\nits threads in the kernel:\n%s", w.spec.Kind, w.spec.ID, timeout, w.stderr.String(), stacks)
		}
	}
}

// waitClean waits for the worker and reports every error it printed.
func (w *worker) waitClean(t *testing.T, timeout time.Duration) int {
	t.Helper()
	ops := 0
	for _, e := range w.wait(t, timeout) {
		switch e.Event {
		case "error":
			t.Errorf("worker %s %d: %s", w.spec.Kind, w.spec.ID, e.Msg)
		case "done":
			ops = e.Ops
		}
	}
	return ops
}
