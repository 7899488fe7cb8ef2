package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shared state: a page of uint64 slots in a file outside the mount,
// mapped by every process. Slot 0 tells readers to stop; writer w owns
// slots slotBase+w*slotsPerWriter+k for its published versions.
const (
	slotStop       = 0
	slotBase       = 8
	slotsPerWriter = 8
	stateSize      = 4096
	maxWriters     = (stateSize/8 - slotBase) / slotsPerWriter
)

// What a writer publishes, per writer (the k above).
const (
	pubSize     = iota // size of the main file after its last write or truncate
	pubMode            // chmod counter: the mode is pubMode % 512
	pubXattr           // setxattr counter: user.v holds it in decimal
	pubRename          // generation of the renamed file's name
	pubCreated         // the last u-file created
	pubUnlinked        // the last u-file unlinked (== created: none exists)
	// Set before the system call starts: a reader may see the effect of
	// a rename or unlink in flight (a name already gone), which is not
	// stale, and must tell it from a stale answer.
	pubRenaming
	pubUnlinking
)

// state is the mapped shared state.
type state struct {
	mem []byte
}

func openState(path string, create bool) (*state, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if create {
		if err := f.Truncate(stateSize); err != nil {
			return nil, err
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, stateSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &state{mem: mem}, nil
}

func (s *state) slot(i int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[i*8])) }

func (s *state) load(w, k int) uint64 {
	return atomic.LoadUint64(s.slot(slotBase + w*slotsPerWriter + k))
}
func (s *state) store(w, k int, v uint64) { atomic.StoreUint64(s.slot(slotBase+w*slotsPerWriter+k), v) }
func (s *state) stopped() bool            { return atomic.LoadUint64(s.slot(slotStop)) != 0 }
func (s *state) stop()                    { atomic.StoreUint64(s.slot(slotStop), 1) }

// Names in the shared directory of the mount.
func mainName(w int) string             { return fmt.Sprintf("w%d-main", w) }
func renameName(w int, g uint64) string { return fmt.Sprintf("w%d-r%d", w, g) }
func unlinkName(w int, n uint64) string { return fmt.Sprintf("w%d-u%d", w, n) }

const (
	xattrVersion = "user.v"
	sharedDir    = "shared"
)

// modeOf is the permission bits chmod counter c sets.
func modeOf(c uint64) uint32 { return uint32(c % 512) }

// modeAtLeast reports whether mode m is what a chmod counter in [c0, c1]
// sets: a reader that saw counter c0 published before its stat and c1
// after (plus one chmod possibly in flight) must see one of those.
func modeAtLeast(m uint32, c0, c1 uint64) bool {
	d := (uint64(m) + 512 - c0%512) % 512
	return d <= c1+1-c0
}

type coherenceConfig struct {
	common
	tier     string
	writers  int
	readers  int
	ops      int
	seed     uint64
	minCheck int
}

func runCoherence(args []string, stdout io.Writer) error {
	var c coherenceConfig
	f := flag.NewFlagSet("coherence", flag.ContinueOnError)
	c.flags(f, "where to create the work directory (default $TMPDIR; needs user xattrs)")
	f.StringVar(&c.tier, "tier", "ebpf", "the fast-path tier to mount with")
	f.IntVar(&c.writers, "writers", 3, "writer processes")
	f.IntVar(&c.readers, "readers", 3, "reader processes")
	f.IntVar(&c.ops, "ops", 400, "mutations per writer")
	f.Uint64Var(&c.seed, "seed", 1, "seed of the writers' operation sequences and the readers' choices")
	f.IntVar(&c.minCheck, "min-checks", 200, "each reader must complete at least this many checks")
	if err := f.Parse(args); err != nil {
		return err
	}
	if c.writers < 1 || c.writers > maxWriters || c.readers < 1 || c.ops < 1 {
		return fmt.Errorf("coherence: need 1..%d writers, at least one reader and one op", maxWriters)
	}
	return coherence(c, stdout)
}

func coherence(c coherenceConfig, stdout io.Writer) (err error) {
	ws, err := c.start("coherence")
	if err != nil {
		return err
	}
	defer ws.finish(&err)
	work, cipher, mnt, x := ws.work, ws.cipher, ws.mnt, ws.x
	m, err := x.mountTier(cipher, mnt, c.tier, filepath.Join(work, "daemon.log"))
	if err != nil {
		return err
	}
	mounted := true
	defer func() {
		if mounted {
			if uerr := m.unmount(); uerr != nil && err == nil {
				err = uerr
			}
		}
	}()
	dir := filepath.Join(mnt, sharedDir)
	if err := setupShared(dir, c.writers); err != nil {
		return err
	}
	statePath := filepath.Join(work, "state")
	st, err := openState(statePath, true)
	if err != nil {
		return err
	}
	st0, err := m.stats()
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	start := time.Now()
	spawn := func(role string, id int, extra ...string) (*exec.Cmd, error) {
		args := append([]string{role, "-dir", dir, "-state", statePath, "-id", strconv.Itoa(id),
			"-seed", strconv.FormatUint(c.seed, 10)}, extra...)
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = stdout, stdout
		return cmd, cmd.Start()
	}
	var readers, writers []*exec.Cmd
	var errs []error
	for i := 0; i < c.readers; i++ {
		cmd, err := spawn("coherence-reader", i, "-writers", strconv.Itoa(c.writers), "-min-checks", strconv.Itoa(c.minCheck))
		if err != nil {
			st.stop()
			return err
		}
		readers = append(readers, cmd)
	}
	for w := 0; w < c.writers; w++ {
		cmd, err := spawn("coherence-writer", w, "-ops", strconv.Itoa(c.ops))
		if err != nil {
			errs = append(errs, err)
			break
		}
		writers = append(writers, cmd)
	}
	for w, cmd := range writers {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("writer %d: %w", w, err))
		}
	}
	st.stop()
	for r, cmd := range readers {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("reader %d: %w", r, err))
		}
	}
	elapsed := time.Since(start)
	if err := finalState(dir, st, c.writers); err != nil {
		errs = append(errs, fmt.Errorf("final state: %w", err))
	}
	st1, err := m.stats()
	if err != nil {
		return err
	}
	d, err := sub(opCounts(st1), opCounts(st0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "coherence: %s tier, %d writers x %d mutations, %d readers, %.1fs; daemon/fast-path: LOOKUP %d/%d, GETATTR %d/%d, GETXATTR %d/%d\n",
		c.tier, c.writers, c.ops, c.readers, elapsed.Seconds(),
		d["LOOKUP"].Daemon, d["LOOKUP"].Hits, d["GETATTR"].Daemon, d["GETATTR"].Hits, d["GETXATTR"].Daemon, d["GETXATTR"].Hits)
	if c.tier == "ebpf" {
		for _, op := range metaOps {
			if d[op].Hits == 0 {
				errs = append(errs, fmt.Errorf("the program served no %s during the stress: it tested nothing there", op))
			}
		}
	}
	mounted = false
	if err := m.unmount(); err != nil {
		errs = append(errs, err)
	} else if err := x.fsck(cipher); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// setupShared creates every writer's version-0 objects.
func setupShared(dir string, writers int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for w := 0; w < writers; w++ {
		p := filepath.Join(dir, mainName(w))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
		if err := os.Chmod(p, os.FileMode(modeOf(0))); err != nil {
			return err
		}
		if err := unix.Setxattr(p, xattrVersion, []byte("0"), 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", p, err)
		}
		if err := os.WriteFile(filepath.Join(dir, renameName(w, 0)), []byte("r"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// finalState checks, with every writer done, that the mount shows exactly
// the last published state.
func finalState(dir string, s *state, writers int) error {
	var errs []error
	want := map[string]bool{}
	for w := 0; w < writers; w++ {
		p := filepath.Join(dir, mainName(w))
		want[mainName(w)] = true
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			errs = append(errs, err)
			continue
		}
		if uint64(st.Size) != s.load(w, pubSize) {
			errs = append(errs, fmt.Errorf("%s: size %d, want %d", p, st.Size, s.load(w, pubSize)))
		}
		if st.Mode&0o777 != modeOf(s.load(w, pubMode)) {
			errs = append(errs, fmt.Errorf("%s: mode %o, want %o", p, st.Mode&0o777, modeOf(s.load(w, pubMode))))
		}
		if v, err := readVersion(p); err != nil || v != s.load(w, pubXattr) {
			errs = append(errs, fmt.Errorf("%s: %s %d (%v), want %d", p, xattrVersion, v, err, s.load(w, pubXattr)))
		}
		want[renameName(w, s.load(w, pubRename))] = true
		if c, u := s.load(w, pubCreated), s.load(w, pubUnlinked); c > u {
			want[unlinkName(w, c)] = true
		}
	}
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	sort.Strings(names)
	var wantNames []string
	for n := range want {
		wantNames = append(wantNames, n)
	}
	sort.Strings(wantNames)
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		errs = append(errs, fmt.Errorf("%s lists %v, want %v", dir, names, wantNames))
	}
	for _, n := range wantNames {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, n), &st); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readVersion(p string) (uint64, error) {
	buf := make([]byte, 64)
	n, err := unix.Getxattr(p, xattrVersion, buf)
	if err != nil {
		return 0, fmt.Errorf("getxattr %s %s: %w", p, xattrVersion, err)
	}
	return strconv.ParseUint(string(buf[:n]), 10, 64)
}

// childFlags are the flags of the writer and reader processes.
type childFlags struct {
	dir, state string
	id         int
	seed       uint64
	ops        int
	writers    int
	minChecks  int
}

func parseChild(role string, args []string) (childFlags, error) {
	var c childFlags
	f := flag.NewFlagSet(role, flag.ContinueOnError)
	f.StringVar(&c.dir, "dir", "", "the shared directory on the mount")
	f.StringVar(&c.state, "state", "", "the shared state file")
	f.IntVar(&c.id, "id", 0, "this process's number")
	f.Uint64Var(&c.seed, "seed", 1, "seed")
	f.IntVar(&c.ops, "ops", 0, "mutations (writer)")
	f.IntVar(&c.writers, "writers", 0, "writers to check (reader)")
	f.IntVar(&c.minChecks, "min-checks", 0, "checks to complete at least (reader)")
	err := f.Parse(args)
	return c, err
}

// runWriter mutates writer id's objects ops times, publishing each
// completed version.
func runWriter(args []string, stdout io.Writer) error {
	c, err := parseChild("coherence-writer", args)
	if err != nil {
		return err
	}
	s, err := openState(c.state, false)
	if err != nil {
		return err
	}
	w := c.id
	rng := rand.New(rand.NewPCG(c.seed, uint64(1000+w)))
	main := filepath.Join(c.dir, mainName(w))
	data := make([]byte, 128)
	for i := 0; i < c.ops; i++ {
		var err error
		switch op := rng.IntN(6); op {
		case 0: // write: append 1..100 bytes at the published size
			size := s.load(w, pubSize)
			n := 1 + rng.IntN(100)
			if err = appendAt(main, data[:n], int64(size)); err == nil {
				s.store(w, pubSize, size+uint64(n))
			}
		case 1: // truncate upwards, often across a block boundary
			size := s.load(w, pubSize) + 1 + uint64(rng.IntN(5000))
			if err = unix.Truncate(main, int64(size)); err == nil {
				s.store(w, pubSize, size)
			}
		case 2:
			ctr := s.load(w, pubMode) + 1
			if err = unix.Chmod(main, modeOf(ctr)); err == nil {
				s.store(w, pubMode, ctr)
			}
		case 3:
			ctr := s.load(w, pubXattr) + 1
			if err = unix.Setxattr(main, xattrVersion, []byte(strconv.FormatUint(ctr, 10)), 0); err == nil {
				s.store(w, pubXattr, ctr)
			}
		case 4:
			g := s.load(w, pubRename)
			s.store(w, pubRenaming, g+1)
			if err = unix.Rename(filepath.Join(c.dir, renameName(w, g)), filepath.Join(c.dir, renameName(w, g+1))); err == nil {
				s.store(w, pubRename, g+1)
			}
		case 5: // create the next u-file, or unlink the live one
			created, unlinked := s.load(w, pubCreated), s.load(w, pubUnlinked)
			if created == unlinked {
				var fd int
				if fd, err = unix.Open(filepath.Join(c.dir, unlinkName(w, created+1)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err == nil {
					unix.Close(fd)
					s.store(w, pubCreated, created+1)
				}
			} else {
				s.store(w, pubUnlinking, created)
				if err = unix.Unlink(filepath.Join(c.dir, unlinkName(w, created))); err == nil {
					s.store(w, pubUnlinked, created)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("writer %d, mutation %d: %w", w, i, err)
		}
	}
	return nil
}

// appendAt writes p at off through a fresh descriptor (open, pwrite,
// close: the close flushes, as an editor saving would).
func appendAt(path string, p []byte, off int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if _, err := unix.Pwrite(fd, p, off); err != nil {
		unix.Close(fd)
		return fmt.Errorf("pwrite: %w", err)
	}
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// Reader check kinds.
var checkNames = []string{"size", "mode", "xattr", "capability", "rename", "unlink"}

// runReader checks random objects until told to stop.
func runReader(args []string, stdout io.Writer) error {
	c, err := parseChild("coherence-reader", args)
	if err != nil {
		return err
	}
	s, err := openState(c.state, false)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(c.seed, uint64(2000+c.id)))
	checks := make([]int, len(checkNames))
	var failures []string
	for !s.stopped() {
		w := rng.IntN(c.writers)
		kind := rng.IntN(len(checkNames))
		if msg := check(c.dir, s, w, kind); msg != "" {
			failures = append(failures, fmt.Sprintf("writer %d %s: %s", w, checkNames[kind], msg))
		}
		checks[kind]++
	}
	total := 0
	var parts []string
	for k, n := range checks {
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", checkNames[k], n))
	}
	fmt.Fprintf(stdout, "coherence: reader %d: %d checks (%s), %d stale or wrong\n", c.id, total, strings.Join(parts, ", "), len(failures))
	for i, f := range failures {
		if i == 20 {
			fmt.Fprintf(stdout, "coherence: reader %d: ... and %d more\n", c.id, len(failures)-20)
			break
		}
		fmt.Fprintf(stdout, "coherence: reader %d: FAIL %s\n", c.id, f)
	}
	if len(failures) > 0 {
		return fmt.Errorf("reader %d saw %d stale or wrong values", c.id, len(failures))
	}
	if total < c.minChecks {
		return fmt.Errorf("reader %d completed %d checks, fewer than %d: the stress did not overlap enough", c.id, total, c.minChecks)
	}
	return nil
}

// check runs one check of writer w's objects: it reads the published
// version first, then the file system, and returns what was wrong.
func check(dir string, s *state, w, kind int) string {
	main := filepath.Join(dir, mainName(w))
	var st unix.Stat_t
	switch checkNames[kind] {
	case "size":
		p0 := s.load(w, pubSize)
		if err := unix.Lstat(main, &st); err != nil {
			return "lstat: " + errString(err)
		}
		if uint64(st.Size) < p0 {
			return fmt.Sprintf("size %d after the writer had completed size %d", st.Size, p0)
		}
	case "mode":
		c0 := s.load(w, pubMode)
		if err := unix.Lstat(main, &st); err != nil {
			return "lstat: " + errString(err)
		}
		c1 := s.load(w, pubMode)
		if m := st.Mode & 0o777; !modeAtLeast(m, c0, c1) {
			return fmt.Sprintf("mode %o after the writer had completed chmod %o (counter %d, now %d)", m, modeOf(c0), c0, c1)
		}
	case "xattr":
		x0 := s.load(w, pubXattr)
		v, err := readVersion(main)
		if err != nil {
			return err.Error()
		}
		if v < x0 {
			return fmt.Sprintf("%s=%d after the writer had completed %d", xattrVersion, v, x0)
		}
	case "capability":
		// Never set, asked before every write: unsupported on cryptfs
		// (it stores user.* only), absent on a local file system (the
		// workload's own tests); never a value. The meta stage compares
		// the exact errno across tiers.
		if _, err := unix.Getxattr(main, "security.capability", make([]byte, 64)); !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENODATA) {
			return "security.capability: " + errString(err) + ", want EOPNOTSUPP or ENODATA"
		}
	case "rename":
		g0 := s.load(w, pubRename)
		if g0 > 0 {
			if err := unix.Lstat(filepath.Join(dir, renameName(w, g0-1)), &st); !errors.Is(err, unix.ENOENT) {
				return fmt.Sprintf("old name %s: %s after the rename to %s completed, want ENOENT", renameName(w, g0-1), errString(err), renameName(w, g0))
			}
		}
		if err := unix.Lstat(filepath.Join(dir, renameName(w, g0)), &st); err != nil {
			if !errors.Is(err, unix.ENOENT) || s.load(w, pubRenaming) == g0 {
				return fmt.Sprintf("new name %s: %s after the rename to it completed", renameName(w, g0), errString(err))
			}
		}
	case "unlink":
		u0 := s.load(w, pubUnlinked)
		c0 := s.load(w, pubCreated)
		if u0 > 0 {
			if err := unix.Lstat(filepath.Join(dir, unlinkName(w, u0)), &st); !errors.Is(err, unix.ENOENT) {
				return fmt.Sprintf("%s: %s after its unlink completed, want ENOENT", unlinkName(w, u0), errString(err))
			}
		}
		if c0 > u0 {
			if err := unix.Lstat(filepath.Join(dir, unlinkName(w, c0)), &st); err != nil {
				if !errors.Is(err, unix.ENOENT) || s.load(w, pubUnlinking) < c0 {
					return fmt.Sprintf("%s: %s after its creation completed", unlinkName(w, c0), errString(err))
				}
			}
		}
	}
	return ""
}
