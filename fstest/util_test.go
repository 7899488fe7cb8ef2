package fstest

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// direntRecord encodes one struct linux_dirent64 padded to 8 bytes.
func direntRecord(ino uint64, off int64, typ uint8, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint64(b[8:], uint64(off))
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

func TestParseDirents(t *testing.T) {
	good := append(direntRecord(1, 10, unix.DT_DIR, "."), direntRecord(2, 20, unix.DT_REG, "a-longer-name")...)
	cases := []struct {
		name    string
		buf     []byte
		want    []dirent
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"two records", good, []dirent{{1, 10, unix.DT_DIR, "."}, {2, 20, unix.DT_REG, "a-longer-name"}}, false},
		{"truncated header", good[:10], nil, true},
		{"record length past the buffer", good[:len(good)-1], []dirent{{1, 10, unix.DT_DIR, "."}}, true},
		{"zero record length", make([]byte, 24), nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDirents(c.buf)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error: %v", err, c.wantErr)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestReadDirentsMatchesReadDir compares the getdents decoder with package os on a real
// directory, with a buffer small enough to need many calls.
func TestReadDirentsMatchesReadDir(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for _, n := range []string{"a", "bb", "c c", "\x01\xff", "dir"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	slices.Sort(want)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ents, err := readDirents(f, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedNames(ents); !slices.Equal(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.name), &st); err != nil {
			t.Fatal(err)
		}
		if e.ino != st.Ino {
			t.Errorf("%q: ino %d, want %d", e.name, e.ino, st.Ino)
		}
	}
}

func TestDiffBytes(t *testing.T) {
	cases := []struct {
		name      string
		got, want []byte
		wantDiff  bool
	}{
		{"equal", []byte("abc"), []byte("abc"), false},
		{"both empty", nil, []byte{}, false},
		{"changed byte", []byte("abc"), []byte("abd"), true},
		{"shorter", []byte("ab"), []byte("abc"), true},
		{"longer", []byte("abcd"), []byte("abc"), true},
		{"longer and changed", []byte("xbcd"), []byte("abc"), true},
	}
	for _, c := range cases {
		if d := diffBytes(c.got, c.want); (d != "") != c.wantDiff {
			t.Errorf("%s: diff %q, want a difference: %v", c.name, d, c.wantDiff)
		}
	}
}

func TestRandBytesDeterministic(t *testing.T) {
	a, b, c := randBytes(1, 1000), randBytes(1, 1000), randBytes(2, 1000)
	if !slices.Equal(a, b) {
		t.Errorf("same seed gave different bytes")
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds gave the same bytes")
	}
}

func TestProcessUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	if got := processUmask(t); got != 0o027 {
		t.Errorf("umask %03o, want 027", got)
	}
}

// TestHelperErrno checks that the helper process reports errnos faithfully.
func TestHelperErrno(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "exists"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req  helperRequest
		want error
	}{
		{helperRequest{UID: -1, Umask: -1, Op: "access", Name: "missing"}, unix.ENOENT},
		{helperRequest{UID: -1, Umask: -1, Op: "access", Name: "exists"}, nil},
		{helperRequest{UID: -1, Umask: -1, Op: "mkdir", Name: "exists", Mode: 0o755}, unix.EEXIST},
		{helperRequest{UID: -1, Umask: -1, Op: "unlink", Name: "exists/x"}, unix.ENOTDIR},
	}
	for _, c := range cases {
		err := runHelper(t, dir, c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("%s %q: %v, want %v", c.req.Op, c.req.Name, err, c.want)
		}
	}
}
