package reversefs

import (
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"

	"github.com/cryptfs/cryptfs/crypt"
)

// FuzzLookUp feeds arbitrary names, as any process on the machine can,
// to the root of a view: a lookup never panics, fails only with ENOENT,
// and succeeds only for names the listing shows.
func FuzzLookUp(f *testing.F) {
	plain := f.TempDir()
	for _, name := range []string{"a", "b.txt", strings.Repeat("L", 200), strings.Repeat("M", 160)} {
		write(f, filepath.Join(plain, name), []byte(name))
	}
	v := newTestView(f, plain, crypt.Options{})
	fsys := v.mount(f)
	listing := readDir(f, fsys, fuseops.RootInodeID)
	for _, name := range listing {
		f.Add(name)
		f.Add(name + "x")
		if len(name) > 1 {
			f.Add(name[:len(name)-1])
		}
	}
	f.Add(crypt.SidecarName("longname." + strings.Repeat("A", 43)))
	f.Add("longname.")
	f.Add(".cryptfs.longname.")
	f.Add(ConfigName)
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
			return // the kernel never sends these
		}
		op := &fuseops.LookUpInodeOp{Parent: fuseops.RootInodeID, Name: name}
		err := fsys.LookUpInode(ctx, op)
		switch {
		case err == nil:
			if !slices.Contains(listing, name) {
				t.Fatalf("lookup of %q succeeded, but the listing does not show it", name)
			}
			fsys.ForgetInode(ctx, &fuseops.ForgetInodeOp{Inode: op.Entry.Child, N: 1})
		case err != syscall.ENOENT:
			t.Fatalf("lookup of %q: %v, want ENOENT", name, err)
		}
	})
}
