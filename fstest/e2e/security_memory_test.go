package e2e

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/harden"
	"github.com/cryptfs/cryptfs/internal/reversefs"
)

// SECURITY.md, "Key handling": while a daemon serves a mount (forward in
// the background or with -f, reverse with -f), its memory holds each
// subkey it uses exactly once, in its keyring (locked in RAM, excluded
// from core dumps), and neither the master key, nor the key-check subkey,
// nor the password or the password-derived key (a -f daemon leaves the
// unlocking to a child); core dumps are off (RLIMIT_CORE 0) and the
// daemon is not dumpable. (After unmount the keyring is wiped before the
// daemon exits: crypt's TestKeysInMemory.) A stray copy is reported with
// the mapping that holds it, the bytes around it and the functions whose
// code addresses are among them: a stack frame, a heap object and a
// signal frame (x87 registers, zero, then XMM0...) look different.

// waitStopped waits until process pid is stopped (SIGSTOP).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		mustDo(t, err)
		if i := strings.LastIndexByte(string(data), ')'); i > 0 && strings.HasPrefix(string(data[i+1:]), " T") {
			return
		}
	}
	t.Fatalf("process %d did not stop", pid)
}

func TestDaemonKeysInMemory(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	for _, mode := range []string{"background", "foreground", "reverse"} {
		t.Run(mode, func(t *testing.T) {
			testDaemonKeysInMemory(t, mode)
		})
	}
}

func testDaemonKeysInMemory(t *testing.T, mode string) {
	ctx := context.Background()
	cli := cryptfstest.NewCLI(t)
	cipher := filepath.Join(t.TempDir(), "cipher")
	confPath := filepath.Join(cipher, config.FileName)
	var initArgs []string
	if mode == "reverse" {
		mustDo(t, os.Mkdir(cipher, 0o700))
		reverseTree(t, cipher)
		confPath = filepath.Join(cipher, reversefs.ConfigName)
		initArgs = []string{"--reverse"}
	}
	res, err := cli.Init(ctx, cipher, initArgs...)
	mustDo(t, err)
	master, err := config.ParseRecoveryKey(recoveryKeyRE.FindString(string(res.Stdout)))
	mustDo(t, err)
	cfg, err := config.Load(confPath, config.LoadOptions{AllowWeakKDF: true})
	mustDo(t, err)
	names := []string{"password", "master", "kek"}
	needles := [][]byte{[]byte(cryptfstest.Password), master, argon2.IDKey([]byte(cryptfstest.Password), cfg.KDF.Salt, cfg.KDF.Time, cfg.KDF.MemoryKiB, cfg.KDF.Threads, crypt.KeyLen)}
	for _, p := range crypt.Purposes() {
		k, err := crypt.DeriveSubkey(master, p)
		mustDo(t, err)
		names, needles = append(names, p), append(needles, k)
	}
	// wanted says how many copies of each needle the daemon may hold:
	// each subkey of its Suite once (and of its Reverse, in reverse
	// mode); nothing else.
	wanted := func(name string) int {
		switch {
		case name == "password" || name == "master" || name == "kek" || name == "key-check":
			return 0
		case strings.HasPrefix(name, "reverse-"):
			if mode == "reverse" {
				return 1
			}
			return 0
		}
		return 1
	}

	var m *cryptfstest.Mount
	if mode == "reverse" {
		// Read the whole view: names, contents, links, attributes.
		m = mountReverse(t, cipher)
		for range 2 {
			treeDigests(t, m.Dir, digestOptions{})
		}
	} else {
		m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher, Background: mode == "background"})
		useEveryKey(t, m.Dir)
	}

	pid := m.PID()
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	mustDo(t, err)
	for _, l := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(l, "Max core file size") && strings.Fields(l)[4] != "0" || strings.HasPrefix(l, "Max core file size") && strings.Fields(l)[5] != "0" {
			t.Errorf("the daemon may dump core: %s", l)
		}
	}
	mustDo(t, m.Signal(syscall.SIGSTOP))
	waitStopped(t, pid)
	hits, err := harden.FindInProcess(pid, needles)
	var stray []string
	if err == nil {
		stray = describeStray(pid, hits, names)
	}
	m.Signal(syscall.SIGCONT)
	mustDo(t, err)
	count := make([]int, len(needles))
	for _, h := range hits {
		count[h.Needle]++
	}
	for _, s := range stray {
		t.Error(s)
	}
	for i, n := range count {
		if want := wanted(names[i]); n != want {
			t.Errorf("%s found %d times in the daemon's memory, want %d", names[i], n, want)
		}
	}
	t.Logf("copies in the daemon (%s): %v", strings.Join(names, " "), count)
	cryptfstest.Unmount(t, m)
}

// describeStray describes each hit outside the keyring (a locked,
// undumpable mapping) in the stopped process pid: the secret, its
// address, the mapping that holds it, and the bytes around it (which
// tell a hash state from a stack frame).
func describeStray(pid int, hits []harden.Hit, names []string) []string {
	mem, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		return []string{fmt.Sprintf("open the daemon's memory: %v", err)}
	}
	defer mem.Close()
	syms := textSymbols(pid)
	var out []string
	for _, h := range hits {
		if h.Mapping.HasFlag("dd") && h.Mapping.HasFlag("lo") {
			continue
		}
		const before, after = 256, 256
		from := max(h.Mapping.Start, h.Addr-min(h.Addr, before))
		buf := make([]byte, h.Addr+after-from)
		n, _ := mem.ReadAt(buf, int64(from))
		out = append(out, fmt.Sprintf("%s at %#x (offset %#x in mapping %#x-%#x %s %q, flags %v): want it only in the keyring (lo: locked, dd: not dumped); bytes from %#x (code addresses: %s):\n%s",
			names[h.Needle], h.Addr, h.Addr-h.Mapping.Start, h.Mapping.Start, h.Mapping.End, h.Mapping.Perms, h.Mapping.Path, h.Mapping.Flags, from, codeAddrs(syms, buf[:n]), hex.Dump(buf[:n])))
	}
	return out
}

// textSymbols returns the function symbols of process pid's executable,
// sorted by address (none if it has no symbol table).
func textSymbols(pid int) []elf.Symbol {
	f, err := elf.Open("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return nil
	}
	defer f.Close()
	all, err := f.Symbols()
	if err != nil {
		return nil
	}
	var funcs []elf.Symbol
	for _, s := range all {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			funcs = append(funcs, s)
		}
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].Value < funcs[j].Value })
	return funcs
}

// codeAddrs names the functions that the aligned words of b point into:
// return addresses, which say whose stack frames these bytes were.
func codeAddrs(syms []elf.Symbol, b []byte) string {
	var names []string
	for i := 0; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		j := sort.Search(len(syms), func(j int) bool { return syms[j].Value > v }) - 1
		if j >= 0 && v < syms[j].Value+syms[j].Size {
			names = append(names, fmt.Sprintf("+%d:%s", i, syms[j].Name))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}

// useEveryKey uses every key of a forward mount at dir: names (long ones
// too), contents, attributes, links.
func useEveryKey(t *testing.T, dir string) {
	t.Helper()
	long := strings.Repeat("l", 200)
	for i := range 50 {
		d := filepath.Join(dir, fmt.Sprintf("dir%d", i))
		mustDo(t, os.Mkdir(d, 0o755))
		mustDo(t, os.WriteFile(filepath.Join(d, long), make([]byte, 3*crypt.BlockSize), 0o644))
		mustDo(t, unix.Setxattr(d, "user.x", []byte("value"), 0))
		mustDo(t, os.Symlink("../target", filepath.Join(d, "sym")))
	}
	for i := range 50 {
		d := filepath.Join(dir, fmt.Sprintf("dir%d", i))
		if _, err := os.ReadFile(filepath.Join(d, long)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Readlink(filepath.Join(d, "sym")); err != nil {
			t.Fatal(err)
		}
		if _, err := readNames(d); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDaemonNotDumpable: an unprivileged user's daemon is not dumpable: its
// /proc files belong to root (the kernel's sign of it), so the user's own
// processes can neither ptrace it nor read its memory. Its keyring is
// locked in RAM under a user's default RLIMIT_MEMLOCK.
func TestDaemonNotDumpable(t *testing.T) {
	const uid, gid = nobodyUID, nobodyGID
	cli, dirs := asNobody(t, "cryptfs-dump-")
	res, err := cli.Init(context.Background(), dirs["cipher"])
	mustDo(t, err)
	master, err := config.ParseRecoveryKey(recoveryKeyRE.FindString(string(res.Stdout)))
	mustDo(t, err)
	content, err := crypt.DeriveSubkey(master, "content")
	mustDo(t, err)
	m, err := cryptfstest.TryMount(t, cli, cryptfstest.MountOptions{Cipher: dirs["cipher"], Dir: dirs["mnt"]})
	mustDo(t, err)
	// The daemon still works: the second write opens an existing file,
	// which the daemon reopens through its own /proc/self/fd.
	raceStep(t, uid, gid, "write", filepath.Join(dirs["mnt"], "f"))
	raceStep(t, uid, gid, "write", filepath.Join(dirs["mnt"], "f"))
	if owner := processUID(t, m.PID()); owner != uid {
		t.Fatalf("the daemon runs as uid %d, want %d", owner, uid)
	}
	var st unix.Stat_t
	mustDo(t, unix.Stat("/proc/"+strconv.Itoa(m.PID())+"/mem", &st))
	if st.Uid != 0 {
		t.Errorf("/proc/%d/mem of the user's daemon belongs to uid %d: the daemon is dumpable", m.PID(), st.Uid)
	}
	mustDo(t, m.Signal(syscall.SIGSTOP))
	waitStopped(t, m.PID())
	hits, err := harden.FindInProcess(m.PID(), [][]byte{content})
	m.Signal(syscall.SIGCONT)
	mustDo(t, err)
	if len(hits) != 1 || !hits[0].Mapping.HasFlag("lo") || !hits[0].Mapping.HasFlag("dd") {
		t.Errorf("the content subkey in the user's daemon: %+v, want once, in a locked (lo), undumpable (dd) mapping", hits)
	}
	cryptfstest.Unmount(t, m)
}
