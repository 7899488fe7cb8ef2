package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// crashWriter creates files one after the other under Dir until a system call fails
// (which it does once the daemon is killed). Each file gets a few writes and truncations
// at random offsets, then fsync and close, and is never touched again except by a rename.
// Events, in order: "begin" (the file may be written from now on), "synced" (fsync and
// close returned: the file must survive a crash exactly, with Size and Sum), "renaming"
// and "renamed" around a rename of a synced file. Every event carries the wall-clock
// time in Msg so the parent can tell errors before the crash from those it caused.
func crashWriter(spec workerSpec, out *workerOut) int {
	rng := newRand(mix(spec.Seed, int64(spec.ID), 5))
	now := func() string { return fmt.Sprint(time.Now().UnixNano()) }
	fail := func(what string, err error) int {
		out.emit(workerEvent{Event: "error", Msg: now(), Name: fmt.Sprintf("%s: %v", what, err)})
		return 0
	}
	var synced []string
	for n := 0; ; n++ {
		name := fmt.Sprintf("w%d-%d", spec.ID, n)
		switch rng.IntN(6) {
		case 0: // a long name: entry plus sidecar
			name = fmt.Sprintf("w%d-%d-%s", spec.ID, n, strings.Repeat("long", 50))
		case 1: // in a new directory
			dir := fmt.Sprintf("w%d-dir%d", spec.ID, n)
			if err := retry0(func() error { return unix.Mkdir(spec.Dir+"/"+dir, 0o755) }); err != nil {
				return fail("mkdir "+dir, err)
			}
			name = dir + "/" + name
		}
		out.emit(workerEvent{Event: "begin", Name: name, Msg: now()})
		f, err := os.OpenFile(spec.Dir+"/"+name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fail("create "+name, err)
		}
		var content []byte
		for k := 1 + rng.IntN(8); k > 0; k-- {
			if rng.IntN(5) == 0 {
				size := rng.Int64N(int64(len(content)) + 10000)
				if err := f.Truncate(size); err != nil {
					f.Close()
					return fail("truncate "+name, err)
				}
				if size < int64(len(content)) {
					content = content[:size]
				} else {
					content = append(content, make([]byte, size-int64(len(content)))...)
				}
				continue
			}
			off := rng.Int64N(int64(len(content)) + 8192)
			if rng.IntN(2) == 0 {
				off = max(0, 4096*rng.Int64N(int64(len(content))/4096+2)+rng.Int64N(3)-1)
			}
			data := randBytes(rng.Uint64(), 1+rng.IntN(64<<10))
			if _, err := f.WriteAt(data, off); err != nil {
				f.Close()
				return fail("write "+name, err)
			}
			if end := off + int64(len(data)); end > int64(len(content)) {
				content = append(content, make([]byte, end-int64(len(content)))...)
			}
			copy(content[off:], data)
			if rng.IntN(4) == 0 {
				if err := f.Sync(); err != nil { // an fsync in the middle changes nothing
					f.Close()
					return fail("fsync "+name, err)
				}
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fail("fsync "+name, err)
		}
		if err := f.Close(); err != nil {
			return fail("close "+name, err)
		}
		sum := sha256.Sum256(content)
		out.emit(workerEvent{Event: "synced", Name: name, Size: int64(len(content)), Sum: hex.EncodeToString(sum[:]), Msg: now()})
		synced = append(synced, name)
		if rng.IntN(5) == 0 {
			i := rng.IntN(len(synced))
			to := synced[i] + "-r"
			out.emit(workerEvent{Event: "renaming", Name: synced[i], To: to, Msg: now()})
			if err := retry0(func() error { return unix.Rename(spec.Dir+"/"+synced[i], spec.Dir+"/"+to) }); err != nil {
				return fail("rename "+synced[i], err)
			}
			out.emit(workerEvent{Event: "renamed", Name: synced[i], To: to, Msg: now()})
			synced[i] = to
		}
	}
}

// crashFile is what the parent knows of one file of the crash workload.
type crashFile struct {
	size   int64
	sum    string
	synced bool
	alias  string // a rename that may or may not have happened
}

// fsckReport runs `cryptfs fsck --json` and decodes its report.
func fsckReport(t *testing.T, cipher string) (int, fsckJSON) {
	t.Helper()
	res, err := cryptfstest.NewCLI(t).Fsck(context.Background(), cipher, "--json")
	var ee *cryptfstest.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	code := cryptfstest.ExitCode(err)
	var rep fsckJSON
	if err := json.Unmarshal(res.Stdout, &rep); err != nil {
		t.Fatalf("cryptfs fsck --json (exit %d): %v\n%s", code, err, res.Stdout)
	}
	return code, rep
}

// fsckJSON is the report of `cryptfs fsck --json`.
type fsckJSON struct {
	Clean    bool `json:"clean"`
	Files    int  `json:"files"`
	Problems []struct {
		Lower  string `json:"lower"`
		Plain  string `json:"plain"`
		Kind   string `json:"kind"`
		Block  *int64 `json:"block"`
		Detail string `json:"detail"`
	} `json:"problems"`
}

// TestReliabilityCrash kills the daemon with SIGKILL (aborting its connection) in the
// middle of a write-heavy workload of several processes, several times over on one cipher
// directory. After each crash, `cryptfs fsck` may only report files that were being
// written (created and not yet fsync'ed and closed), and after remounting every file that
// was fsync'ed and closed before the crash must read back exactly.
func TestReliabilityCrash(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	seed := modelSeed(t)
	t.Logf("seed %d (reproduce with FSTEST_MODEL_SEED=%d)", seed, seed)
	rng := newRand(seed)
	cipher := cryptfstest.Init(t)
	files := map[string]*crashFile{} // plaintext path -> state
	// Files being written at some crash: fsck may report them after every later crash
	// too (nothing touches them again).
	inflight := map[string]bool{}
	rounds := sized(3, 30)
	for round := 0; round < rounds; round++ {
		m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
		// Everything synced in earlier rounds must still be there, exactly.
		checkCrashFiles(t, m.Dir, files, round)
		if t.Failed() {
			return
		}
		var ws []*worker
		for id := 0; id < 3; id++ {
			ws = append(ws, startWorker(t, workerSpec{Kind: "crash", ID: round*10 + id, Seed: seed, Dir: m.Dir}))
		}
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		killed := time.Now().UnixNano()
		// A crash: the daemon dies, the kernel aborts the connection as
		// its /dev/fuse closes, and every later request of the workers
		// fails. The dead mount stays until the workers have ended: with
		// it detached, a worker's next create would land in the
		// directory underneath and it would write on forever.
		mustDo(t, m.Kill())
		nsynced, ninflight := 0, 0
		for _, w := range ws {
			for _, e := range w.wait(t, time.Minute) {
				var at int64
				fmt.Sscan(e.Msg, &at)
				switch e.Event {
				case "begin":
					inflight[e.Name] = true
					ninflight++
					files[e.Name] = &crashFile{}
				case "synced":
					delete(inflight, e.Name)
					ninflight--
					files[e.Name] = &crashFile{size: e.Size, sum: e.Sum, synced: true}
					nsynced++
				case "renaming":
					files[e.Name].alias = e.To
				case "renamed":
					f := files[e.Name]
					delete(files, e.Name)
					f.alias = ""
					files[e.To] = f
				case "error":
					if at < killed {
						t.Errorf("round %d: worker %d failed before the crash: %s", round, w.spec.ID, e.Name)
					}
				}
			}
		}
		mustDo(t, m.Abort())
		t.Logf("round %d: killed after %d files synced, %d being written", round, nsynced, ninflight)

		code, rep := fsckReport(t, cipher)
		for _, p := range rep.Problems {
			name := strings.TrimPrefix(p.Plain, "/")
			allowed := inflight[name] && (p.Kind == "block" || p.Kind == "size" || p.Kind == "header")
			if !allowed {
				t.Errorf("round %d: fsck reports a problem outside the files being written: %s %s (%s): %s",
					round, p.Kind, p.Lower, p.Plain, p.Detail)
			} else {
				t.Logf("round %d: fsck: %s %s: %s", round, p.Kind, p.Plain, p.Detail)
			}
		}
		if (code == 0) != rep.Clean {
			t.Errorf("round %d: fsck exit code %d with clean=%v", round, code, rep.Clean)
		}
		// Files that were being written are left as they are; later rounds leave them
		// alone and check only the synced ones.
		for name := range inflight {
			delete(files, name)
		}
		if t.Failed() {
			return
		}
	}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	checkCrashFiles(t, m.Dir, files, rounds)
	cryptfstest.Unmount(t, m)
}

// checkCrashFiles reads every synced file back.
func checkCrashFiles(t *testing.T, dir string, files map[string]*crashFile, round int) {
	t.Helper()
	for name, f := range files {
		if !f.synced {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && f.alias != "" {
			data, err = os.ReadFile(filepath.Join(dir, f.alias))
		}
		if err != nil {
			t.Errorf("after crash %d: synced file %s: %v", round, name, err)
			continue
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.size || hex.EncodeToString(sum[:]) != f.sum {
			t.Errorf("after crash %d: synced file %s: %d bytes (sha256 %x), want %d bytes (%s)",
				round, name, len(data), sum[:8], f.size, f.sum[:16])
		}
	}
}
