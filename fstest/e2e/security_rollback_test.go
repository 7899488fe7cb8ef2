package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// What SECURITY.md says an attacker who can write the cipher tree can do
// undetected, beyond reliability_tamper_test.go's cases (issue 13.2, 13.3):
// roll one block back to an earlier version of itself, cut a file at a
// block boundary and append zeros, and move an entry to another directory
// together with a copy of its directory's IV. Each case reads exactly as
// SECURITY.md says, the daemon logs no error for it, and fsck calls the
// tree clean (or lists only what the attacker hid).

// TestSecurityRollback: per-block authentication does not see versions.
func TestSecurityRollback(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	cases := []struct {
		name string
		// tamper changes tr and returns the plaintext "a" must now read.
		tamper func(t *testing.T, tr *tamperTree) []byte
	}{
		{
			name: "one block rolled back to an earlier version",
			tamper: func(t *testing.T, tr *tamperTree) []byte {
				old1 := storedBlock(t, tr.lower["a"], 1)
				// The owner rewrites blocks 1 and 2 through the mount.
				m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
				newer := randBytes(77, 2*crypt.BlockSize)
				f, err := os.OpenFile(filepath.Join(m.Dir, "a"), os.O_WRONLY, 0)
				mustDo(t, err)
				_, err = f.WriteAt(newer, crypt.BlockSize)
				mustDo(t, err)
				mustDo(t, f.Close())
				cryptfstest.Unmount(t, m)
				if slices.Equal(storedBlock(t, tr.lower["a"], 1), old1) {
					t.Fatal("the rewrite did not change stored block 1")
				}
				// The attacker puts back the stored block 1 they saw before.
				patch(t, tr.lower["a"], blockOff(1), old1)
				want := slices.Clone(tr.plain["a"])
				copy(want[2*crypt.BlockSize:3*crypt.BlockSize], newer[crypt.BlockSize:])
				return want // block 1 old, block 2 new
			},
		},
		{
			name: "cut at a block boundary, then zeros appended",
			tamper: func(t *testing.T, tr *tamperTree) []byte {
				mustDo(t, os.Truncate(tr.lower["a"], blockOff(2)))
				f, err := os.OpenFile(tr.lower["a"], os.O_WRONLY|os.O_APPEND, 0)
				mustDo(t, err)
				// Two whole zero blocks and a zero final block of 500
				// stored bytes (460 plaintext bytes): all holes.
				_, err = f.Write(make([]byte, 2*crypt.CipherBlockSize+500))
				mustDo(t, err)
				mustDo(t, f.Close())
				want := slices.Clone(tr.plain["a"][:2*crypt.BlockSize])
				return append(want, make([]byte, 2*crypt.BlockSize+500-crypt.BlockOverhead)...)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTamperTree(t)
			want := c.tamper(t, tr)
			m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
			checkBytes(t, readFile(t, filepath.Join(m.Dir, "a")), want, "a after the change")
			checkBytes(t, readFile(t, filepath.Join(m.Dir, "c")), tr.plain["c"], "an untouched file")
			cryptfstest.Unmount(t, m)
			if strings.Contains(m.Log(), `"level":"error"`) {
				t.Errorf("the daemon logged an error for an undetectable change:\n%s", m.Log())
			}
			wantFsck(t, tr.cipher)
		})
	}
}

// TestSecurityDirIVCopied: a directory IV is not bound to its directory's
// place (issue 13.2). An entry moved alone to another directory is hidden
// there (reliability_tamper_test.go), but moved together with a copy of its
// old directory's IV, written over the target's, it is accepted under its
// old name, with its content; the target's own entries no longer decrypt
// and are hidden, each with a log line, and fsck lists only them.
func TestSecurityDirIVCopied(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	tr := newTamperTree(t)
	d := tr.lower["d"]
	ivFile := filepath.Join(d, crypt.DirIVFile)
	rootIV, err := os.ReadFile(filepath.Join(tr.cipher, crypt.DirIVFile))
	mustDo(t, err)
	mustDo(t, os.Chmod(ivFile, 0o600))
	mustDo(t, os.WriteFile(ivFile, rootIV, 0o400))
	moved := filepath.Join(d, filepath.Base(tr.lower["a"]))
	mustDo(t, os.Rename(tr.lower["a"], moved))

	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: tr.cipher})
	names, err := readNames(filepath.Join(m.Dir, "d"))
	mustDo(t, err)
	if strings.Join(names, ",") != "a" {
		t.Errorf("d lists %q, want just a (moved in with its IV; e hidden)", names)
	}
	checkBytes(t, readFile(t, filepath.Join(m.Dir, "d", "a")), tr.plain["a"], "the moved file in its new directory")
	_, err = os.Stat(filepath.Join(m.Dir, "d", "e"))
	wantErrno(t, err, unix.ENOENT, "d/e, whose directory's IV was replaced")
	cryptfstest.Unmount(t, m)
	wantLogged(t, m, tr.lower["d/e"])
	code, rep := fsckReport(t, tr.cipher)
	if code != 20 {
		t.Errorf("fsck: exit %d, want 20 (e no longer decrypts)", code)
	}
	listsE := false
	for _, p := range rep.Problems {
		if p.Lower == moved {
			t.Errorf("fsck found the moved entry: %+v (SECURITY.md says it is accepted)", p)
		}
		listsE = listsE || p.Lower == tr.lower["d/e"]
	}
	if !listsE {
		t.Errorf("fsck does not list d/e, whose name no longer decrypts: %+v", rep.Problems)
	}
}

// TestSecurityXattrNamesEqualAcrossFiles: an attribute name encrypts the
// same on every file (SECURITY.md: which files carry the same attribute
// names is visible).
func TestSecurityXattrNamesEqualAcrossFiles(t *testing.T) {
	cryptfstest.RequireFUSE(t)
	tr := newTamperTree(t)
	onB := onlyXattr(t, tr.lower["b"]) // user.x
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(tr.lower["a"], buf)
	mustDo(t, err)
	onA := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	if !slices.Contains(onA, onB) {
		t.Errorf("user.x is %q on b's lower file but a's lower file has %q", onB, onA)
	}
	if strings.Contains(onB, "user.x") || !strings.HasPrefix(onB, "user.") {
		t.Errorf("lower attribute name %q: want user.<encrypted>", onB)
	}
}
