package e2e

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/fstest"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// cryptfsOptions are cryptfs's documented differences from ext4.
func cryptfsOptions() fstest.Options {
	return fstest.Options{
		MaxXattrNameLen: crypt.MaxXattrName,     // names are stored encrypted (docs/format.md)
		MaxSymlinkLen:   crypt.MaxSymlinkTarget, // targets are stored encrypted
		// Sealed values are 40 bytes longer and ext4 keeps one inode's
		// xattrs in one 4 KiB block.
		MaxXattrValueLen:       3500,
		MaxXattrs:              20,
		SparseBlocksUnreliable: true, // jacobsa/fuse derives st_blocks from the size
		// jacobsa/fuse converts reply times with a truncating division
		// (conversions.go, convertTime): a pre-1970 time with nanoseconds
		// comes back off by up to a second. A library bug, not ours.
		NegativeTimesUnreliable: true,
	}
}

// TestCryptfs runs the POSIX suite on a real cryptfs mount, in the tiers
// every kernel has (or those listed in $CRYPTFS_TIERS, comma-separated,
// e.g. "ebpf" in the vmtest guest), then checks the cipher tree it left is
// clean.
func TestCryptfs(t *testing.T) {
	tiers := []string{"off", "kernel-cache"}
	if env := os.Getenv("CRYPTFS_TIERS"); env != "" {
		tiers = strings.Split(env, ",")
	}
	for _, tier := range tiers {
		t.Run(tier, func(t *testing.T) {
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=" + tier, "--allow-other"}})
			fstest.Run(t, m.Dir, cryptfsOptions())
			cryptfstest.Unmount(t, m)
			if strings.Contains(m.Log(), `"level":"error"`) {
				t.Errorf("the daemon logged errors during the suite:\n%s", m.Log())
			}
			fsck(t, m.Cipher, 0)
		})
	}
}

// TestCryptfsDeterministicNames runs the suite in deterministic-names mode.
func TestCryptfsDeterministicNames(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the second suite run in -short mode")
	}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cryptfstest.Init(t, "--deterministic-names"), Args: []string{"--allow-other"}})
	fstest.Run(t, m.Dir, cryptfsOptions())
	cryptfstest.Unmount(t, m)
	fsck(t, m.Cipher, 0)
}

// fsck runs `cryptfs fsck` and checks its exit code; it returns the output.
func fsck(t *testing.T, cipher string, wantCode int) string {
	t.Helper()
	res, err := cryptfstest.NewCLI(t).Fsck(context.Background(), cipher)
	if code := cryptfstest.ExitCode(err); code != wantCode {
		t.Fatalf("cryptfs fsck exit code %d, want %d\n%s", code, wantCode, res.Output)
	}
	return string(res.Output)
}

// TestPlaintextNeverInLower writes a marker through every channel (file
// names, contents, directory names, symlink targets, xattr names and
// values) and checks no lower name, content, target or xattr contains it.
func TestPlaintextNeverInLower(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{})
	const marker = "PLAINTEXT-MARKER-7f3a"
	content := bytes.Repeat([]byte(marker+"\n"), 5000) // many blocks
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, marker+"-dir"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, marker+"-dir", marker+"-file"), content, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, strings.Repeat(marker, 10)), []byte(marker), 0o644)) // long name
	mustDo(t, os.Symlink(marker+"-target", filepath.Join(m.Dir, marker+"-link")))
	mustDo(t, unix.Setxattr(filepath.Join(m.Dir, marker+"-dir"), "user."+marker, []byte(marker), 0))
	cryptfstest.Unmount(t, m)

	err := filepath.WalkDir(m.Cipher, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), marker) {
			t.Errorf("lower name contains the plaintext: %s", path)
		}
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte(marker)) {
				t.Errorf("lower file contains the plaintext: %s", path)
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if strings.Contains(target, marker) {
				t.Errorf("lower symlink target contains the plaintext: %s", path)
			}
		}
		if d.Type()&fs.ModeSymlink == 0 {
			buf := make([]byte, 64<<10)
			n, err := unix.Listxattr(path, buf)
			if err != nil {
				return err
			}
			for _, name := range strings.Split(string(buf[:n]), "\x00") {
				if name == "" {
					continue
				}
				if strings.Contains(name, marker) {
					t.Errorf("lower xattr name contains the plaintext: %s %s", path, name)
				}
				v := make([]byte, 64<<10)
				vn, err := unix.Getxattr(path, name, v)
				if err == nil && bytes.Contains(v[:vn], []byte(marker)) {
					t.Errorf("lower xattr value contains the plaintext: %s %s", path, name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTamperedBlock flips one bit in a cipher block: reading that block
// gives EIO (other blocks still read), the daemon logs one line naming the
// cipher file, and fsck names it and exits 20.
func TestTamperedBlock(t *testing.T) {
	cipher := cryptfstest.Init(t)
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*4096/16) // three blocks
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "victim"), data, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "bystander"), data, 0o644))
	var vst unix.Stat_t
	mustDo(t, unix.Stat(filepath.Join(m.Dir, "victim"), &vst))
	cryptfstest.Unmount(t, m)

	victim := lowerFileOf(t, cipher, vst.Ino)
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	mustDo(t, err)
	off := int64(crypt.BlockOffset(1) + 100) // inside block 1's ciphertext
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	mustDo(t, err)
	b[0] ^= 0x01
	_, err = f.WriteAt(b, off)
	mustDo(t, err)
	mustDo(t, f.Close())

	m = cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: cipher})
	g, err := os.Open(filepath.Join(m.Dir, "victim"))
	mustDo(t, err)
	defer g.Close()
	buf := make([]byte, 4096)
	if _, err := g.ReadAt(buf, 0); err != nil {
		t.Errorf("block 0 of the tampered file: %v, want it readable", err)
	}
	if _, err := g.ReadAt(buf, 4096); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the tampered block: %v, want EIO", err)
	}
	if got, err := os.ReadFile(filepath.Join(m.Dir, "bystander")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the untouched file: %v", err)
	}
	g.Close()
	cryptfstest.Unmount(t, m)
	lines := 0
	for _, l := range strings.Split(m.Log(), "\n") {
		if strings.Contains(l, "authentication failed") && strings.Contains(l, filepath.Base(victim)) {
			lines++
		}
	}
	if lines == 0 {
		t.Errorf("no log line names the tampered file %s:\n%s", victim, m.Log())
	}
	out := fsck(t, cipher, 20)
	if !strings.Contains(out, filepath.Base(victim)) || !strings.Contains(out, "/victim") {
		t.Errorf("fsck output does not name the tampered file:\n%s", out)
	}
}

// lowerFileOf finds the lower file of a plaintext inode: cryptfs passes
// lower inode numbers through as st_ino, except for a file whose lower
// number was reused while the kernel still held the old file's node (that
// one gets a private node ID); tests that remove lower files behind the
// daemon's back use lowerPathOf instead.
func lowerFileOf(t *testing.T, cipher string, ino uint64) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(cipher, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if st.Ino == ino {
			found = path
		}
		return nil
	})
	mustDo(t, err)
	if found == "" {
		t.Fatalf("no lower file with inode %d in %s", ino, cipher)
	}
	return found
}

// lowerPathOf returns the path in the cipher tree (or reverse view)
// cipher of plaintext path rel, encrypting names with the harness password
// and the tree's cryptfs.conf (ciphertree.LowerPath, as fsck and the
// offline tools do: it does not depend on inode numbers); it works with
// and without per-directory IVs, and for long names.
func lowerPathOf(t *testing.T, cipher, rel string) string {
	t.Helper()
	cfg, err := config.Load(filepath.Join(cipher, config.FileName), config.LoadOptions{AllowWeakKDF: true})
	mustDo(t, err)
	master, err := cfg.Unlock([]byte(cryptfstest.Password))
	mustDo(t, err)
	suite, err := crypt.New(master, cfg.CryptOptions())
	crypt.Wipe(master)
	mustDo(t, err)
	defer suite.Wipe()
	tree, err := ciphertree.Open(cipher, suite)
	mustDo(t, err)
	defer tree.Close()
	lower, err := tree.LowerPath(rel)
	mustDo(t, err)
	return filepath.Join(cipher, lower)
}

// TestAtimeAfterRead: a read that reaches the daemon moves the atime as
// relatime does (lower files are opened O_NOATIME, so the daemon does it),
// and the kernel-cache tier shows it.
func TestAtimeAfterRead(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=kernel-cache"}})
	p := filepath.Join(m.Dir, "f")
	mustDo(t, os.WriteFile(p, bytes.Repeat([]byte("r"), 10000), 0o644))
	past := []unix.Timespec{{Sec: 1000000000}, {Sec: 1000000001}} // atime before mtime
	mustDo(t, unix.UtimesNano(p, past))
	var st unix.Stat_t
	mustDo(t, unix.Stat(p, &st))
	if st.Atim.Sec != past[0].Sec {
		t.Fatalf("atime %d after utimens, want %d", st.Atim.Sec, past[0].Sec)
	}
	f, err := os.Open(p)
	mustDo(t, err)
	defer f.Close()
	// Drop the page cache so that the read reaches the daemon.
	mustDo(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
	if _, err := f.ReadAt(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mustDo(t, unix.Stat(p, &st))
		if st.Atim.Sec > past[1].Sec {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("atime still %d after a read (mtime %d): relatime wants it moved", st.Atim.Sec, st.Mtim.Sec)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDebugLogHasNoPlaintext: with --debug every request is logged with
// its opcode, inode and cipher path, and no plaintext name or content
// appears in the log.
func TestDebugLogHasNoPlaintext(t *testing.T) {
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--debug"}})
	const marker = "PLAINTEXT-IN-LOG-3b9d"
	dir := filepath.Join(m.Dir, marker+"-dir")
	mustDo(t, os.Mkdir(dir, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, marker+"-file"), []byte(marker), 0o644))
	mustDo(t, unix.Setxattr(dir, "user."+marker, []byte(marker), 0))
	if _, err := os.ReadFile(filepath.Join(dir, marker+"-file")); err != nil {
		t.Fatal(err)
	}
	os.Stat(filepath.Join(dir, marker+"-missing"))
	cryptfstest.Unmount(t, m)
	log := m.Log()
	if !strings.Contains(log, `"op":"CREATE"`) || !strings.Contains(log, `"op":"MKDIR"`) {
		t.Fatalf("the debug log does not show the requests:\n%s", log)
	}
	if strings.Contains(log, marker) {
		t.Errorf("the debug log contains plaintext:\n%s", log)
	}
}
