package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// The tamper tests modify an unmounted cipher tree the way an attacker with write access
// could, then check exactly what SECURITY.md promises: what it says is detected fails
// with EIO through the mount, with an error line in the daemon's log naming the cipher
// file, and `cryptfs fsck` lists it (exit 20); what it says is not detected (truncation at
// a block boundary, zeroed blocks, whole-file swaps, swapped names within a directory,
// xattr values swapped between files, swapped symlink targets) reads as documented and
// fsck calls the tree clean. A tampered config is refused by mount and fsck alike.

// tamperTree is the tree every tamper case starts from.
type tamperTree struct {
	cipher string
	plain  map[string][]byte // plaintext path -> content (regular files)
	lower  map[string]string // plaintext path -> lower path (files, symlinks, directories)
}

const longTamperName = "a-long-name-that-needs-a-sidecar-" +
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" +
	"0123456789012345678901234567890123456789"

// newTamperTree creates the tree: files a, b and c (three full blocks and a partial one;
// c is as long as a), d/e, a long-named file, symlinks s -> a and s2 -> b, and xattrs
// user.x on a and b and user.y on a.
func newTamperTree(t *testing.T) *tamperTree {
	t.Helper()
	tr := &tamperTree{cipher: cryptfstest.Init(t), plain: map[string][]byte{}, lower: map[string]string{}}
	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
	mustDo(t, os.Mkdir(filepath.Join(m.Dir, "d"), 0o755))
	for i, name := range []string{"a", "b", "c", "d/e", longTamperName} {
		tr.plain[name] = randBytes(uint64(1000+i), 3*crypt.BlockSize+100)
		mustDo(t, os.WriteFile(filepath.Join(m.Dir, name), tr.plain[name], 0o644))
	}
	mustDo(t, os.Symlink("a", filepath.Join(m.Dir, "s")))
	mustDo(t, os.Symlink("b", filepath.Join(m.Dir, "s2")))
	mustDo(t, unix.Setxattr(filepath.Join(m.Dir, "a"), "user.x", []byte("value of a.x"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(m.Dir, "a"), "user.y", []byte("value of a.y"), 0))
	mustDo(t, unix.Setxattr(filepath.Join(m.Dir, "b"), "user.x", []byte("value of b.x"), 0))
	for _, name := range []string{"a", "b", "c", "d", "d/e", longTamperName, "s", "s2"} {
		var st unix.Stat_t
		mustDo(t, unix.Lstat(filepath.Join(m.Dir, name), &st))
		tr.lower[name] = lowerFileOf(t, tr.cipher, st.Ino)
	}
	cryptfstest.Unmount(t, m)
	fsck(t, tr.cipher, 0)
	return tr
}

// patch overwrites bytes of a lower file at off.
func patch(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt(data, off)
	mustDo(t, err)
	mustDo(t, f.Close())
}

// lowerBytes reads n bytes of a lower file at off.
func lowerBytes(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	mustDo(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	mustDo(t, err)
	return b
}

// flip flips one bit of a lower file at off.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b := lowerBytes(t, path, off, 1)
	patch(t, path, off, []byte{b[0] ^ 0x10})
}

// storedBlock returns block n of a lower file as stored (nonce, ciphertext, tag).
func storedBlock(t *testing.T, path string, n int) []byte {
	t.Helper()
	st, err := os.Stat(path)
	mustDo(t, err)
	off := int64(crypt.BlockOffset(uint64(n)))
	return lowerBytes(t, path, off, int(min(int64(crypt.CipherBlockSize), st.Size()-off)))
}

func blockOff(n int) int64 { return int64(crypt.BlockOffset(uint64(n))) }

// readBlocks reads every 4 KiB block of a plaintext file through the mount with O_DIRECT
// (from the daemon, not a cache) and returns, per block, its bytes or its error.
func readBlocks(t *testing.T, path string, size int) ([][]byte, []error) {
	t.Helper()
	f, err := openFile(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	mustDo(t, err)
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, crypt.BlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	mustDo(t, err)
	defer unix.Munmap(buf)
	var data [][]byte
	var errs []error
	for off := 0; off < size; off += crypt.BlockSize {
		n, err := retry(func() (int, error) { return unix.Pread(fd(f), buf, int64(off)) })
		if err != nil {
			data, errs = append(data, nil), append(errs, err)
			continue
		}
		data, errs = append(data, append([]byte(nil), buf[:n]...)), append(errs, nil)
	}
	return data, errs
}

// wantBlocks checks a file block by block: the blocks in bad give EIO, the others read
// as want.
func wantBlocks(t *testing.T, path string, want []byte, bad ...int) {
	t.Helper()
	data, errs := readBlocks(t, path, len(want))
	isBad := map[int]bool{}
	for _, b := range bad {
		isBad[b] = true
	}
	for i := range data {
		lo, hi := i*crypt.BlockSize, min((i+1)*crypt.BlockSize, len(want))
		switch {
		case isBad[i] && !errors.Is(errs[i], unix.EIO):
			t.Errorf("%s block %d: %v (%d bytes), want EIO", filepath.Base(path), i, errs[i], len(data[i]))
		case !isBad[i] && errs[i] != nil:
			t.Errorf("%s block %d: %v, want it readable", filepath.Base(path), i, errs[i])
		case !isBad[i]:
			checkBytes(t, data[i], want[lo:hi], "%s block %d", filepath.Base(path), i)
		}
	}
}

// wantLogged checks that the daemon logged an error or warning naming the lower file.
func wantLogged(t *testing.T, m *cryptfstest.Mount, lower string) {
	t.Helper()
	for _, l := range strings.Split(m.Log(), "\n") {
		if (strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"warn"`)) && strings.Contains(l, filepath.Base(lower)) {
			return
		}
	}
	t.Errorf("no error or warning in the daemon log names %s:\n%s", filepath.Base(lower), tail(m.Log(), 20))
}

// wantFsck runs fsck: with no lower paths it must call the tree clean (exit 0); otherwise
// it must exit 20 and list each given lower path with the given kind ("kind:path").
func wantFsck(t *testing.T, cipher string, problems ...string) {
	t.Helper()
	code, rep := fsckReport(t, cipher)
	if len(problems) == 0 {
		if code != 0 || !rep.Clean {
			t.Errorf("fsck: exit %d, problems %+v; want a clean tree (SECURITY.md: not detected)", code, rep.Problems)
		}
		return
	}
	if code != 20 {
		t.Errorf("fsck: exit %d, want 20", code)
	}
	for _, want := range problems {
		kind, path, _ := strings.Cut(want, ":")
		found := false
		for _, p := range rep.Problems {
			if p.Kind == kind && p.Lower == path {
				found = true
			}
		}
		if !found {
			t.Errorf("fsck does not list a %s problem for %s; it lists %+v", kind, path, rep.Problems)
		}
	}
}

// TestReliabilityTamperContent tampers with file contents.
func TestReliabilityTamperContent(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	lastBlock := 3 // the partial block of every file
	cases := []struct {
		name   string
		tamper func(t *testing.T, tr *tamperTree)
		check  func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount)
		fsck   func(tr *tamperTree) []string
	}{
		{
			name:   "bit flip in a nonce",
			tamper: func(t *testing.T, tr *tamperTree) { flip(t, tr.lower["a"], blockOff(0)+3) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 0)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name:   "bit flip in a ciphertext",
			tamper: func(t *testing.T, tr *tamperTree) { flip(t, tr.lower["a"], blockOff(1)+1000) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 1)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name:   "bit flip in a tag",
			tamper: func(t *testing.T, tr *tamperTree) { flip(t, tr.lower["a"], blockOff(3)-5) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 2)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name:   "bit flip in the final partial block",
			tamper: func(t *testing.T, tr *tamperTree) { flip(t, tr.lower["a"], blockOff(lastBlock)+30) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], lastBlock)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name: "blocks swapped within a file",
			tamper: func(t *testing.T, tr *tamperTree) {
				b0, b1 := storedBlock(t, tr.lower["a"], 0), storedBlock(t, tr.lower["a"], 1)
				patch(t, tr.lower["a"], blockOff(0), b1)
				patch(t, tr.lower["a"], blockOff(1), b0)
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 0, 1)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name: "block moved from another file",
			tamper: func(t *testing.T, tr *tamperTree) {
				patch(t, tr.lower["a"], blockOff(2), storedBlock(t, tr.lower["b"], 2))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 2)
				wantBlocks(t, filepath.Join(m.Dir, "b"), tr.plain["b"])
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name: "header's file ID replaced",
			tamper: func(t *testing.T, tr *tamperTree) {
				patch(t, tr.lower["a"], 2, randBytes(5, 16))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 0, 1, 2, 3)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name: "header copied from another file",
			tamper: func(t *testing.T, tr *tamperTree) {
				patch(t, tr.lower["a"], 0, lowerBytes(t, tr.lower["b"], 0, crypt.HeaderLen))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"], 0, 1, 2, 3)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name:   "header's version changed",
			tamper: func(t *testing.T, tr *tamperTree) { patch(t, tr.lower["a"], 0, []byte{0, 3}) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.ReadFile(filepath.Join(m.Dir, "a"))
				wantErrno(t, err, unix.EIO, "reading a file whose header has version 3")
			},
			fsck: func(tr *tamperTree) []string { return []string{"header:" + tr.lower["a"]} },
		},
		{
			name:   "header of the pre-release version 1",
			tamper: func(t *testing.T, tr *tamperTree) { patch(t, tr.lower["a"], 0, []byte{0, 1}) },
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.ReadFile(filepath.Join(m.Dir, "a"))
				wantErrno(t, err, unix.EIO, "reading a file whose header has version 1")
			},
			fsck: func(tr *tamperTree) []string { return []string{"header:" + tr.lower["a"]} },
		},
		{
			name: "truncated inside a block",
			tamper: func(t *testing.T, tr *tamperTree) {
				mustDo(t, os.Truncate(tr.lower["a"], blockOff(2)+1000))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				// A valid-looking size: block 2 is now a 960-byte block that does not
				// authenticate.
				wantBlocks(t, filepath.Join(m.Dir, "a"), tr.plain["a"][:2*crypt.BlockSize+1000-crypt.BlockOverhead], 2)
			},
			fsck: func(tr *tamperTree) []string { return []string{"block:" + tr.lower["a"]} },
		},
		{
			name: "truncated to a size no cipher file has",
			tamper: func(t *testing.T, tr *tamperTree) {
				mustDo(t, os.Truncate(tr.lower["a"], blockOff(2)+20)) // 20 bytes: less than a block's overhead
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				// docs/format.md 5.3: reported as corrupt; fs/ reports the size rounded
				// down and fails the read.
				_, err := os.ReadFile(filepath.Join(m.Dir, "a"))
				wantErrno(t, err, unix.EIO, "reading a file with an impossible cipher size")
			},
			fsck: func(tr *tamperTree) []string { return []string{"size:" + tr.lower["a"]} },
		},
		// What SECURITY.md says is not detected.
		{
			name: "truncated at a block boundary (not detected)",
			tamper: func(t *testing.T, tr *tamperTree) {
				mustDo(t, os.Truncate(tr.lower["a"], blockOff(2)))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				got, err := os.ReadFile(filepath.Join(m.Dir, "a"))
				mustDo(t, err)
				checkBytes(t, got, tr.plain["a"][:2*crypt.BlockSize], "a file truncated at a block boundary")
			},
		},
		{
			name: "block zeroed (not detected: a hole)",
			tamper: func(t *testing.T, tr *tamperTree) {
				patch(t, tr.lower["a"], blockOff(1), make([]byte, crypt.CipherBlockSize))
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				want := append([]byte(nil), tr.plain["a"]...)
				clear(want[crypt.BlockSize : 2*crypt.BlockSize])
				got, err := os.ReadFile(filepath.Join(m.Dir, "a"))
				mustDo(t, err)
				checkBytes(t, got, want, "a file with a zeroed block")
			},
		},
		{
			name: "whole files swapped (not detected)",
			tamper: func(t *testing.T, tr *tamperTree) {
				a, c := tr.lower["a"], tr.lower["c"]
				da, err := os.ReadFile(a)
				mustDo(t, err)
				dc, err := os.ReadFile(c)
				mustDo(t, err)
				patch(t, a, 0, dc)
				patch(t, c, 0, da)
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				checkBytes(t, readFile(t, filepath.Join(m.Dir, "a")), tr.plain["c"], "a after swapping a and c")
				checkBytes(t, readFile(t, filepath.Join(m.Dir, "c")), tr.plain["a"], "c after swapping a and c")
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTamperTree(t)
			c.tamper(t, tr)
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
			c.check(t, tr, m)
			// Untouched files stay readable.
			checkBytes(t, readFile(t, filepath.Join(m.Dir, "d/e")), tr.plain["d/e"], "an untouched file")
			cryptfstest.Unmount(t, m)
			var problems []string
			if c.fsck != nil {
				problems = c.fsck(tr)
				wantLogged(t, m, tr.lower["a"])
			} else if strings.Contains(m.Log(), `"level":"error"`) {
				t.Errorf("the daemon logged an error for an undetectable change:\n%s", m.Log())
			}
			wantFsck(t, tr.cipher, problems...)
		})
	}
}

// TestReliabilityTamperNames tampers with names, directory IVs, symlinks and xattrs.
func TestReliabilityTamperNames(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cases := []struct {
		name   string
		tamper func(t *testing.T, tr *tamperTree) (logged string, fsck []string)
		check  func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount)
	}{
		{
			name: "cipher file moved to another directory",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				to := filepath.Join(tr.lower["d"], filepath.Base(tr.lower["a"]))
				mustDo(t, os.Rename(tr.lower["a"], to))
				return to, []string{"name:" + to}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.Stat(filepath.Join(m.Dir, "a"))
				wantErrno(t, err, unix.ENOENT, "the moved file under its old path")
				// The entry cannot be named in its new directory: it must not show up.
				names, err := readNames(filepath.Join(m.Dir, "d"))
				mustDo(t, err)
				if strings.Join(names, ",") != "e" {
					t.Errorf("listing the directory the file was moved into: %q, want just e", names)
				}
			},
		},
		{
			name: "cipher file renamed to a name that does not decrypt",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				b := []byte(filepath.Base(tr.lower["a"]))
				b[10] = otherB64(b[10])
				to := filepath.Join(filepath.Dir(tr.lower["a"]), string(b))
				mustDo(t, os.Rename(tr.lower["a"], to))
				return to, []string{"name:" + to}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				names, err := readNames(m.Dir)
				mustDo(t, err)
				for _, n := range names {
					if n != "b" && n != "c" && n != "d" && n != longTamperName && n != "s" && n != "s2" {
						t.Errorf("listing shows %q for a name that does not decrypt", n)
					}
				}
			},
		},
		{
			name: "long-name sidecar altered",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				sidecar := filepath.Join(filepath.Dir(tr.lower[longTamperName]), crypt.SidecarName(filepath.Base(tr.lower[longTamperName])))
				data, err := os.ReadFile(sidecar)
				mustDo(t, err)
				data[50] = otherB64(data[50])
				mustDo(t, os.Chmod(sidecar, 0o600))
				mustDo(t, os.WriteFile(sidecar, data, 0o600))
				return tr.lower[longTamperName], []string{"sidecar:" + tr.lower[longTamperName]}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				// A lookup needs only the entry (named by the hash of the encrypted
				// name), so the file may still open by its name, with its own content;
				// a listing cannot name it and must leave it out.
				if data, err := os.ReadFile(filepath.Join(m.Dir, longTamperName)); err == nil {
					checkBytes(t, data, tr.plain[longTamperName], "the long-named file")
				}
				names, err := readNames(m.Dir)
				mustDo(t, err)
				if strings.Join(names, ",") != "a,b,c,d,s,s2" {
					t.Errorf("listing with an altered sidecar: %q, want a,b,c,d,s,s2", names)
				}
			},
		},
		{
			name: "directory IV replaced",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				iv := filepath.Join(tr.lower["d"], crypt.DirIVFile)
				mustDo(t, os.Chmod(iv, 0o600))
				mustDo(t, os.WriteFile(iv, randBytes(8, crypt.DirIVLen), 0o400))
				return tr.lower["d/e"], []string{"name:" + tr.lower["d/e"]}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.ReadFile(filepath.Join(m.Dir, "d/e"))
				if err == nil {
					t.Errorf("a file in a directory whose IV was replaced still opens")
				}
				names, _ := readNames(filepath.Join(m.Dir, "d"))
				if len(names) != 0 {
					t.Errorf("listing a directory whose IV was replaced shows %q", names)
				}
			},
		},
		{
			name: "directory IV removed",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				iv := filepath.Join(tr.lower["d"], crypt.DirIVFile)
				mustDo(t, os.Remove(iv))
				return iv, []string{"diriv:" + iv}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.ReadFile(filepath.Join(m.Dir, "d/e"))
				wantErrno(t, err, unix.EIO, "a file in a directory whose IV was removed")
			},
		},
		{
			name: "symlink target altered",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				target, err := os.Readlink(tr.lower["s"])
				mustDo(t, err)
				b := []byte(target)
				b[40] = otherB64(b[40])
				mustDo(t, os.Remove(tr.lower["s"]))
				mustDo(t, os.Symlink(string(b), tr.lower["s"]))
				return tr.lower["s"], []string{"symlink:" + tr.lower["s"]}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := os.Readlink(filepath.Join(m.Dir, "s"))
				wantErrno(t, err, unix.EIO, "reading an altered symlink")
			},
		},
		{
			name: "xattr value altered",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				name := onlyXattr(t, tr.lower["b"])
				v := make([]byte, 256)
				n, err := unix.Getxattr(tr.lower["b"], name, v)
				mustDo(t, err)
				v[n-1] ^= 1
				mustDo(t, unix.Setxattr(tr.lower["b"], name, v[:n], 0))
				return tr.lower["b"], []string{"xattr:" + tr.lower["b"]}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				_, err := unix.Getxattr(filepath.Join(m.Dir, "b"), "user.x", make([]byte, 256))
				wantErrno(t, err, unix.EIO, "getxattr of an altered value")
			},
		},
		{
			name: "xattr values swapped between names",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				buf := make([]byte, 4096)
				n, err := unix.Listxattr(tr.lower["a"], buf)
				mustDo(t, err)
				names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
				if len(names) != 2 {
					t.Fatalf("lower xattrs of a: %q", names)
				}
				v0, v1 := make([]byte, 256), make([]byte, 256)
				n0, err := unix.Getxattr(tr.lower["a"], names[0], v0)
				mustDo(t, err)
				n1, err := unix.Getxattr(tr.lower["a"], names[1], v1)
				mustDo(t, err)
				mustDo(t, unix.Setxattr(tr.lower["a"], names[0], v1[:n1], 0))
				mustDo(t, unix.Setxattr(tr.lower["a"], names[1], v0[:n0], 0))
				return tr.lower["a"], []string{"xattr:" + tr.lower["a"]}
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				for _, name := range []string{"user.x", "user.y"} {
					_, err := unix.Getxattr(filepath.Join(m.Dir, "a"), name, make([]byte, 256))
					wantErrno(t, err, unix.EIO, "getxattr %s after swapping the values", name)
				}
			},
		},
		// What SECURITY.md says is not detected.
		{
			name: "names swapped within a directory (not detected)",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				tmp := tr.lower["a"] + "-tmp"
				mustDo(t, os.Rename(tr.lower["a"], tmp))
				mustDo(t, os.Rename(tr.lower["b"], tr.lower["a"]))
				mustDo(t, os.Rename(tmp, tr.lower["b"]))
				return "", nil
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				checkBytes(t, readFile(t, filepath.Join(m.Dir, "a")), tr.plain["b"], "a after swapping the names of a and b")
			},
		},
		{
			name: "xattr value copied to another file (not detected)",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				name := onlyXattr(t, tr.lower["b"]) // user.x has the same lower name on every file
				v := make([]byte, 256)
				n, err := unix.Getxattr(tr.lower["a"], name, v)
				mustDo(t, err)
				mustDo(t, unix.Setxattr(tr.lower["b"], name, v[:n], 0))
				return "", nil
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				v := make([]byte, 256)
				n, err := unix.Getxattr(filepath.Join(m.Dir, "b"), "user.x", v)
				mustDo(t, err)
				if string(v[:n]) != "value of a.x" {
					t.Errorf("b's user.x after copying a's: %q", v[:n])
				}
			},
		},
		{
			name: "symlink targets swapped (not detected)",
			tamper: func(t *testing.T, tr *tamperTree) (string, []string) {
				t1, err := os.Readlink(tr.lower["s"])
				mustDo(t, err)
				t2, err := os.Readlink(tr.lower["s2"])
				mustDo(t, err)
				mustDo(t, os.Remove(tr.lower["s"]))
				mustDo(t, os.Remove(tr.lower["s2"]))
				mustDo(t, os.Symlink(t2, tr.lower["s"]))
				mustDo(t, os.Symlink(t1, tr.lower["s2"]))
				return "", nil
			},
			check: func(t *testing.T, tr *tamperTree, m *cryptfstest.Mount) {
				if got, err := os.Readlink(filepath.Join(m.Dir, "s")); err != nil || got != "b" {
					t.Errorf("s after swapping the targets: %q %v, want b", got, err)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTamperTree(t)
			logged, problems := c.tamper(t, tr)
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
			c.check(t, tr, m)
			checkBytes(t, readFile(t, filepath.Join(m.Dir, "c")), tr.plain["c"], "an untouched file")
			cryptfstest.Unmount(t, m)
			if logged != "" {
				wantLogged(t, m, logged)
			} else if strings.Contains(m.Log(), `"level":"error"`) {
				t.Errorf("the daemon logged an error for an undetectable change:\n%s", m.Log())
			}
			wantFsck(t, tr.cipher, problems...)
		})
	}
}

// otherB64 returns a base64url character other than c, so a tampered name stays well-formed.
func otherB64(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// onlyXattr returns the name of the single user xattr of a lower file.
func onlyXattr(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(path, buf)
	mustDo(t, err)
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	if len(names) != 1 {
		t.Fatalf("lower xattrs of %s: %q, want one", path, names)
	}
	return names[0]
}

// runRefused runs a cryptfs command that must fail, and returns its exit code and output.
// A mount that succeeds is unmounted and reported.
func runRefused(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cryptfstest.NewCLI(t).Run(ctx, cryptfstest.Password+"\n", args...)
	var ee *cryptfstest.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("cryptfs %s: %v (want a refusal)\n%s", strings.Join(args, " "), err, res.Output)
		return 0, string(res.Output)
	}
	return ee.Code, string(res.Output)
}

// TestReliabilityTamperConfig changes one thing in cryptfs.conf at a time: mount and fsck
// must refuse the directory with the documented exit code (10: the key wrap fails, which
// looks like a wrong password; 12: unsupported, corrupt or weak) and a message, mounting
// nothing.
func TestReliabilityTamperConfig(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cases := []struct {
		name     string
		from, to string
		code     int
		noWeak   bool // run without --insecure-kdf
		msg      string
	}{
		{"feature flag added", `"features": [],`, "\"features\": [\n    \"deterministic-names\"\n  ],", 10, false, "wrong password"},
		{"unknown feature flag", `"features": [],`, "\"features\": [\n    \"zz-future\"\n  ],", 12, false, "newer cryptfs"},
		{"format version raised", `"version": 2,`, `"version": 3,`, 12, false, "newer cryptfs"},
		{"pre-release format version 1", `"version": 2,`, `"version": 1,`, 12, false, "pre-release"},
		{"KDF time changed", `"time": 1,`, `"time": 2,`, 10, false, "wrong password"},
		{"KDF memory changed", `"memory_kib": 1024,`, `"memory_kib": 2048,`, 10, false, "wrong password"},
		{"KDF threads changed", `"threads": 1,`, `"threads": 2,`, 10, false, "wrong password"},
		{"salt changed", `"salt": "`, `"salt": "AAAA`, 10, false, "wrong password"},
		{"wrapped key changed", `"wrapped_key": "`, `"wrapped_key": "AAAA`, 10, false, "wrong password"},
		{"key check changed", `"key_check": "`, `"key_check": "AAAA`, 12, false, ""},
		{"not canonical", `"version": 2,`, `"version":  2,`, 12, false, ""},
		{"KDF below the floor", "", "", 12, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cipher := cryptfstest.Init(t)
			conf := filepath.Join(cipher, "cryptfs.conf")
			data, err := os.ReadFile(conf)
			mustDo(t, err)
			if c.from != "" {
				if !bytes.Contains(data, []byte(c.from)) {
					t.Fatalf("config has no %q:\n%s", c.from, data)
				}
				tampered := bytes.Replace(data, []byte(c.from), []byte(c.to), 1)
				if strings.HasPrefix(c.to, `"salt": "AAAA`) || strings.HasPrefix(c.to, `"wrapped_key": "AAAA`) || strings.HasPrefix(c.to, `"key_check": "AAAA`) {
					// Keep the base64 the same length: replace its first four characters.
					i := bytes.Index(data, []byte(c.from)) + len(c.from)
					tampered = append(append(append([]byte(nil), data[:i]...), "AAAA"...), data[i+4:]...)
				}
				mustDo(t, os.Chmod(conf, 0o600))
				mustDo(t, os.WriteFile(conf, tampered, 0o400))
			}
			mnt := filepath.Join(t.TempDir(), "mnt")
			mustDo(t, os.Mkdir(mnt, 0o755))
			weak := []string{"--insecure-kdf"}
			if c.noWeak {
				weak = nil
			}
			for _, cmd := range [][]string{
				append(append([]string{"mount", "-f"}, weak...), cipher, mnt),
				append(append([]string{"fsck"}, weak...), cipher),
			} {
				code, out := runRefused(t, cmd...)
				if code != c.code {
					t.Errorf("cryptfs %s: exit %d, want %d\n%s", cmd[0], code, c.code, out)
				}
				if c.msg != "" && !strings.Contains(out, c.msg) {
					t.Errorf("cryptfs %s: message %q does not say %q", cmd[0], strings.TrimSpace(out), c.msg)
				}
				if strings.TrimSpace(out) == "" {
					t.Errorf("cryptfs %s: refused without a message", cmd[0])
				}
				if cryptfstest.IsMounted(mnt) {
					t.Errorf("cryptfs %s mounted a tampered directory", cmd[0])
					unix.Unmount(mnt, unix.MNT_DETACH)
				}
			}
		})
	}
}
