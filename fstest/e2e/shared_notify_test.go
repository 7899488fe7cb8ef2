package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/fstest/cryptfstest"
)

// TestSharedStorageNotify: with change notification, an outside change
// shows through a --shared-storage mount long before the 1 s bound, even
// when the kernel holds fresh entries and attributes of every name it
// touches (stat'ed right before the change): an in-place rewrite of a
// file (a new size), a file replaced by rename, a new file, a deleted
// file, a file renamed inside a subdirectory. Without notification each
// would show only when the kernel's validity (1 s) ran out.
func TestSharedStorageNotify(t *testing.T) {
	cipher := cryptfstest.Init(t)
	mA := sharedMount(t, cipher)
	a := mA.Dir
	write := func(dir, name, data string) {
		mustDo(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	mustDo(t, os.Mkdir(filepath.Join(a, "sub"), 0o755))
	write(a, "edit", "edit v1")
	write(a, "replace", "replace v1")
	write(a, "gone", "gone")
	write(a, "sub/inner", "inner")

	// The other machine's version of the tree.
	other := copyTree(t, cipher)
	mB := cryptfstest.NewMount(t, cryptfstest.MountOptions{Cipher: other})
	b := mB.Dir
	write(b, "edit", "edit version two, longer")
	write(b, "replace", "replace version two, longer")
	write(b, "new", "new file")
	mustDo(t, os.Rename(filepath.Join(b, "sub/inner"), filepath.Join(b, "sub/moved")))
	srcEdit := lowerPathOf(t, other, "edit")
	srcReplace := lowerPathOf(t, other, "replace")
	srcNew := lowerPathOf(t, other, "new")
	srcMoved := lowerPathOf(t, other, "sub/moved")
	cryptfstest.Unmount(t, mB)
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		mustDo(t, err)
		return data
	}
	edit, replace, newData, moved := read(srcEdit), read(srcReplace), read(srcNew), read(srcMoved)

	dstEdit := lowerPathOf(t, cipher, "edit")
	dstReplace := lowerPathOf(t, cipher, "replace")
	dstGone := lowerPathOf(t, cipher, "gone")
	dstInner := lowerPathOf(t, cipher, "sub/inner")
	dstSub := filepath.Dir(dstInner)
	// Names are the same on both sides (same directory IVs): place the
	// other side's files under their own names.
	rel := func(p string) string {
		r, err := filepath.Rel(other, p)
		mustDo(t, err)
		return filepath.Join(cipher, r)
	}

	// The kernel's view, fresh: once what it holds has expired, every
	// name involved is stat'ed, which looks it up again with a full
	// second of validity (not read: the kernel drops a file's cached
	// atime, so its attributes, after every READ it sends).
	time.Sleep(sharedBound + sharedSlack)
	for _, p := range []string{"edit", "replace", "gone", "sub/inner", "new", "sub/moved", "sub"} {
		os.Stat(filepath.Join(a, p)) // "new" and "sub/moved": negative entries
	}
	before := time.Now()

	// The sync client, by hand (this process is not the daemon): edit in
	// place, replace by rename, create by rename, delete, rename.
	f, err := os.OpenFile(dstEdit, os.O_WRONLY|os.O_TRUNC, 0)
	mustDo(t, err)
	_, err = f.Write(edit)
	mustDo(t, err)
	mustDo(t, f.Close())
	mustDo(t, os.WriteFile(dstReplace+".tmp", replace, 0o644))
	mustDo(t, os.Rename(dstReplace+".tmp", rel(srcReplace)))
	mustDo(t, os.WriteFile(filepath.Join(cipher, "sync.tmp"), newData, 0o644))
	mustDo(t, os.Rename(filepath.Join(cipher, "sync.tmp"), rel(srcNew)))
	mustDo(t, os.Remove(dstGone))
	mustDo(t, os.Rename(dstInner, filepath.Join(dstSub, filepath.Base(srcMoved))))
	if !bytes.Equal(moved, read(filepath.Join(dstSub, filepath.Base(srcMoved)))) {
		t.Fatal("sub/moved: the renamed lower file is not the other side's")
	}
	changed := time.Now()
	if d := changed.Sub(before); d > 300*time.Millisecond {
		t.Skipf("the outside changes took %v (machine overloaded): the kernel's entries would expire before notification could be told from expiry", d)
	}

	want := map[string]string{
		"edit":      "edit version two, longer",
		"replace":   "replace version two, longer",
		"new":       "new file",
		"sub/moved": "inner",
		"gone":      "",
		"sub/inner": "",
	}
	// What the mount shows now: sizes by stat (the kernel's cached
	// attributes, unless dropped), presence by stat (cached entries).
	state := func() string {
		var bad []string
		for name, content := range want {
			st, err := os.Stat(filepath.Join(a, name))
			switch {
			case content == "" && !errors.Is(err, fs.ErrNotExist):
				bad = append(bad, name+": still there")
			case content != "" && err != nil:
				bad = append(bad, name+": "+err.Error())
			case content != "" && st.Size() != int64(len(content)):
				bad = append(bad, name+": old size")
			}
		}
		return strings.Join(bad, ", ")
	}
	const limit = 400 * time.Millisecond
	var last string
	for {
		if last = state(); last == "" {
			break
		}
		if time.Since(changed) > limit {
			t.Fatalf("%v after the outside changes the mount still shows the old state (%s); the kernel's validity is %v",
				time.Since(changed), last, sharedBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the mount showed every change %v after it was made (stat'ed %v before; validity %v)",
		time.Since(changed), changed.Sub(before), sharedBound)
	for name, content := range want {
		if content != "" {
			if got := string(read(filepath.Join(a, name))); got != content {
				t.Errorf("%s: %q, want %q", name, got, content)
			}
		}
	}
	noAuthFailures(t, mA)
}

// TestSharedStorageInPlaceRewrite: another program rewrites a cipher file
// in place (dd conv=notrunc of another cryptfs file's ciphertext, as
// rsync --inplace does) while the mount has it open for writing. The
// mount's next write through that descriptor must fail (ESTALE, one log
// line naming the file) instead of writing a block under the other
// version's file ID, which would leave the file a mix of two versions
// that decrypts without any error; the file then reads exactly as the
// other program left it. So must a read through the same descriptor once
// the kernel asks the daemon again.
func TestSharedStorageInPlaceRewrite(t *testing.T) {
	cipher := cryptfstest.Init(t)
	m := sharedMount(t, cipher)
	const size = 3 * 4096
	mine, theirs := randBytes(1, size), randBytes(2, size)
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "a"), mine, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(m.Dir, "b"), theirs, 0o644))
	lowerA, lowerB := lowerPathOf(t, cipher, "a"), lowerPathOf(t, cipher, "b")

	f, err := os.OpenFile(filepath.Join(m.Dir, "a"), os.O_RDWR, 0)
	mustDo(t, err)
	defer f.Close()
	buf := make([]byte, 100)
	_, err = f.ReadAt(buf, 0)
	mustDo(t, err)

	// The other program: b's ciphertext over a's, in place (same inode).
	other, err := os.ReadFile(lowerB)
	mustDo(t, err)
	rewriteInPlace(t, lowerA, other)

	// The mount's write of its middle block through the old descriptor,
	// then a read through it.
	wantStaleDescriptor(t, f, 'M', 4096, 8192, "a descriptor whose cipher file was rewritten in place")
	mustDo(t, f.Close())

	// A new open sees the other program's version, whole.
	checkBytes(t, readFile(t, filepath.Join(m.Dir, "a")), theirs, "a after the in-place rewrite")
	// And writes to it normally.
	g, err := os.OpenFile(filepath.Join(m.Dir, "a"), os.O_RDWR, 0)
	mustDo(t, err)
	_, err = g.WriteAt([]byte("fresh"), 0)
	mustDo(t, err)
	mustDo(t, g.Close())
	checkBytes(t, readFile(t, filepath.Join(m.Dir, "a")), append([]byte("fresh"), theirs[5:]...), "a written after reopening")

	if n := strings.Count(m.Log(), "rewritten in place"); n != 1 || !strings.Contains(m.Log(), lowerA) {
		t.Errorf("want one log line naming %s, got %d:\n%s", lowerA, n, m.Log())
	}
	noAuthFailures(t, m)
}

// TestSharedStorageInPlaceSameID: another program rewrites a cipher file
// in place with another version of the same file (same header, same file
// ID: what rsync --inplace brings from a machine whose cryptfs changed the
// file's blocks in place) while the mount has it open for writing. The
// header check cannot see it; the lower file's ctime does. The mount's
// next write through that descriptor must fail (ESTALE, one log line
// naming the file) instead of writing its block into the other version,
// which would decrypt without any error as a mix of the two; so must a
// read through it, and the file then reads exactly as the other program
// left it.
//
// The same when the mount makes a change of its own to the file (a chmod,
// an xattr) after the other program's and before its next write: that
// change must not pass the other program's off as the mount's.
func TestSharedStorageInPlaceSameID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		between func(path string) error // through the mount, after the rewrite
	}{
		{"write", func(string) error { return nil }},
		{"chmod then write", func(path string) error { return os.Chmod(path, 0o600) }},
		{"setxattr then write", func(path string) error { return unix.Setxattr(path, "user.k", []byte("v"), 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testInPlaceSameID(t, tc.between) })
	}
}

func testInPlaceSameID(t *testing.T, between func(path string) error) {
	cipher := cryptfstest.Init(t)
	m := sharedMount(t, cipher)
	const size = 3 * 4096
	mine := randBytes(3, size)
	path := filepath.Join(m.Dir, "a")
	mustDo(t, os.WriteFile(path, mine, 0o644))
	lowerA := lowerPathOf(t, cipher, "a")
	v1, err := os.ReadFile(lowerA)
	mustDo(t, err)

	// The other machine's version: the same file with its middle block
	// changed through cryptfs (in place, so the same file ID).
	g, err := os.OpenFile(path, os.O_RDWR, 0)
	mustDo(t, err)
	_, err = g.WriteAt(bytes.Repeat([]byte{'O'}, 4096), 4096)
	mustDo(t, err)
	mustDo(t, g.Close())
	theirsCipher, err := os.ReadFile(lowerA)
	mustDo(t, err)
	theirs := append(append(append([]byte{}, mine[:4096]...), bytes.Repeat([]byte{'O'}, 4096)...), mine[8192:]...)
	// (18 bytes: the header, docs/format.md 5.1.)
	if !bytes.Equal(theirsCipher[:18], v1[:18]) || bytes.Equal(theirsCipher, v1) {
		t.Fatalf("the test needs two versions of the cipher file with one header: same header %v, same file %v",
			bytes.Equal(theirsCipher[:18], v1[:18]), bytes.Equal(theirsCipher, v1))
	}
	// This machine's version again (in place), before the mount opens it.
	rewriteInPlace(t, lowerA, v1)
	time.Sleep(sharedBound + sharedSlack)

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	mustDo(t, err)
	defer f.Close()
	buf := make([]byte, 100)
	_, err = f.ReadAt(buf, 0)
	mustDo(t, err)
	checkBytes(t, buf, mine[:100], "a as opened")
	_, err = f.WriteAt(bytes.Repeat([]byte{'M'}, 4096), 0)
	mustDo(t, err)
	// A later timestamp tick than the mount's own write, on kernels
	// without multigrain timestamps.
	time.Sleep(20 * time.Millisecond)

	// The other program: the other version over this one, in place.
	rewriteInPlace(t, lowerA, theirsCipher)
	mustDo(t, between(path))
	theirsCipher, err = os.ReadFile(lowerA)
	mustDo(t, err)

	// The mount's write of its last block through the old descriptor.
	wantStaleDescriptor(t, f, 'N', 8192, 4096, "a descriptor whose cipher file was changed in place (same file ID)")
	mustDo(t, f.Close())

	// Not a mix: the other program's version, whole, byte for byte.
	got, err := os.ReadFile(lowerA)
	mustDo(t, err)
	if !bytes.Equal(got, theirsCipher) {
		t.Errorf("the lower file changed after the other program's rewrite (a mix of two versions)")
	}
	checkBytes(t, readFile(t, path), theirs, "a after the in-place rewrite")
	// A new descriptor works normally, and so does a chmod, a rename and
	// an xattr between its writes (the daemon's own ctime changes).
	h, err := os.OpenFile(path, os.O_RDWR, 0)
	mustDo(t, err)
	_, err = h.WriteAt([]byte("fresh"), 0)
	mustDo(t, err)
	mustDo(t, os.Chmod(path, 0o600))
	mustDo(t, unix.Setxattr(path, "user.k", []byte("v"), 0))
	path2 := filepath.Join(m.Dir, "b")
	mustDo(t, os.Rename(path, path2))
	_, err = h.WriteAt([]byte("again"), 5)
	mustDo(t, err)
	mustDo(t, h.Close())
	checkBytes(t, readFile(t, path2), append([]byte("freshagain"), theirs[10:]...), "a written after reopening")

	if n := strings.Count(m.Log(), "changed in place"); n != 1 || !strings.Contains(m.Log(), lowerA) {
		t.Errorf("want one log line naming %s, got %d:\n%s", lowerA, n, m.Log())
	}
	noAuthFailures(t, m)
}

// rewriteInPlace writes data over the file at path from offset 0 without
// truncating it or replacing its inode, as rsync --inplace does.
// wantStaleDescriptor checks that f, whose cipher file another program
// changed in place, fails a write of one block of b at writeOff with
// ESTALE, and a read at readOff too once the kernel's pages are gone
// (change notification drops them at once; it waits up to the bound).
func wantStaleDescriptor(t *testing.T, f *os.File, b byte, writeOff, readOff int64, what string) {
	t.Helper()
	_, werr := f.WriteAt(bytes.Repeat([]byte{b}, 4096), writeOff)
	wantErrno(t, werr, unix.ESTALE, "write through %s", what)
	buf := make([]byte, 100)
	var rerr error
	for start := time.Now(); time.Since(start) < sharedBound+sharedSlack; time.Sleep(20 * time.Millisecond) {
		if _, rerr = f.ReadAt(buf, readOff); rerr != nil {
			break
		}
	}
	wantErrno(t, rerr, unix.ESTALE, "read through %s", what)
}

func rewriteInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = w.WriteAt(data, 0)
	mustDo(t, err)
	mustDo(t, w.Close())
}

// TestSharedStorageOwnChangesNotStale: the daemon's own changes to an
// open file move its ctime too (writes through two descriptors at once,
// chmod, utimes, xattrs, truncation, hard links, renames, unlinks), and
// none of them may pass for another program's: many of them at once, from
// several goroutines, must never fail a read or write with ESTALE.
func TestSharedStorageOwnChangesNotStale(t *testing.T) {
	cipher := cryptfstest.Init(t)
	m := sharedMount(t, cipher)
	path := filepath.Join(m.Dir, "a")
	mustDo(t, os.WriteFile(path, randBytes(4, 4*4096), 0o644))
	var fds [2]*os.File
	for i := range fds {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		mustDo(t, err)
		defer f.Close()
		fds[i] = f
	}
	deadline := time.Now().Add(3 * time.Second)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for i, f := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			blk := bytes.Repeat([]byte{byte('a' + i)}, 4096)
			buf := make([]byte, 4096)
			for n := 0; time.Now().Before(deadline); n++ {
				if _, err := f.WriteAt(blk, int64(n%4)*4096); err != nil {
					errs <- fmt.Errorf("write %d through descriptor %d: %w", n, i, err)
					return
				}
				if _, err := f.ReadAt(buf, int64((n+1)%4)*4096); err != nil {
					errs <- fmt.Errorf("read %d through descriptor %d: %w", n, i, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		cur := path
		for n := 0; time.Now().Before(deadline); n++ {
			next := filepath.Join(m.Dir, fmt.Sprintf("a%d", n%2))
			link := filepath.Join(m.Dir, "link")
			steps := []error{
				os.Chmod(cur, 0o600|os.FileMode(n%2)<<6),
				os.Chtimes(cur, time.Now(), time.Now()),
				unix.Setxattr(cur, "user.k", []byte{byte(n)}, 0),
				os.Link(cur, link),
				os.Rename(cur, next),
				os.Remove(link),
				fds[n%2].Truncate(4 * 4096),
			}
			cur = next
			for k, err := range steps {
				if err != nil {
					errs <- fmt.Errorf("change %d of round %d: %w", k, n, err)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if strings.Contains(m.Log(), "changed in place") {
		t.Errorf("the daemon took its own changes for another program's:\n%s", m.Log())
	}
}
