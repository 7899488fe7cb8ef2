package fusefs

import (
	"os"
	"reflect"
	"regexp"
	"syscall"
	"testing"

	"github.com/jacobsa/fuse/fuseops"
)

// TestOpTableListsEveryOp: every request type jacobsa/fuse decodes (the
// *Op structs of fuseops) has an entry, with a known opcode of its own
// (FSYNC and FSYNCDIR share SyncFileOp).
func TestOpTableListsEveryOp(t *testing.T) {
	src, err := os.ReadFile("../../third_party/fuse/fuseops/ops.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^type (\w+Op) struct`).FindAllStringSubmatch(string(src), -1) {
		names[m[1]] = true
	}
	if len(names) < 30 {
		t.Fatalf("found only %d op types in fuseops: the pattern is stale", len(names))
	}
	listed := map[string]bool{}
	codes := map[string]string{}
	for typ, d := range opTable {
		name := typ.Elem().Name()
		listed[name] = true
		if !names[name] {
			t.Errorf("opTable lists %s, which fuseops does not have", name)
		}
		if !d.code.Known() {
			t.Errorf("%s: opcode %d is not a FUSE opcode", name, d.code)
		}
		if other, dup := codes[d.code.String()]; dup {
			t.Errorf("%s and %s share opcode %s", name, other, d.code)
		}
		codes[d.code.String()] = name
	}
	for name := range names {
		if !listed[name] {
			t.Errorf("fuseops.%s is not in opTable: it would be counted as opcode 0 and answered ENOSYS", name)
		}
	}
}

// TestOpTableInode: the inode of a request is the one it is about: the
// directory for operations on a name in it, the target of a hard link,
// the old directory of a rename, else the inode itself; none for requests
// that name only a handle or nothing.
func TestOpTableInode(t *testing.T) {
	const (
		inode     = 10
		parent    = 20
		oldParent = 30
		target    = 40
	)
	for typ, d := range opTable {
		v := reflect.New(typ.Elem())
		set := func(field string, id uint64) bool {
			f := v.Elem().FieldByName(field)
			if !f.IsValid() || f.Type() != reflect.TypeOf(fuseops.InodeID(0)) {
				return false
			}
			f.SetUint(id)
			return true
		}
		want := uint64(0)
		for _, f := range []struct {
			name string
			id   uint64
		}{{"Inode", inode}, {"Parent", parent}, {"OldParent", oldParent}, {"Target", target}} {
			if set(f.name, f.id) {
				want = f.id // the later fields are the more specific ones
			}
		}
		if typ.Elem().Name() == "CreateLinkOp" {
			want = target
		}
		if d.inode == nil {
			if want != 0 {
				t.Errorf("%s: no inode extraction, but it has an inode field (%d)", typ.Elem().Name(), want)
			}
			continue
		}
		if got := d.inode(v.Interface()); got != want {
			t.Errorf("%s: inode %d, want %d", typ.Elem().Name(), got, want)
		}
	}
}

// TestUnknownOp: a request the table does not list is answered ENOSYS and
// counted as opcode 0.
func TestUnknownOp(t *testing.T) {
	type strange struct{}
	d := describe(&strange{})
	if d != unknown || d.code != 0 || d.inode != nil {
		t.Fatalf("describe(unknown) = %+v", d)
	}
	if err := d.serve(nil, nil, &strange{}); err != syscall.ENOSYS {
		t.Errorf("unknown request answered %v, want ENOSYS", err)
	}
}

// TestQuickFor: metadata requests, and reads and writes of at most
// smallIO bytes, may be served on the reader; larger transfers, listings
// and syncs always get a goroutine; FORGETs are always on the reader.
func TestQuickFor(t *testing.T) {
	for _, c := range []struct {
		name  string
		op    any
		quick bool
	}{
		{"lookup", &fuseops.LookUpInodeOp{}, true},
		{"unlink", &fuseops.UnlinkOp{}, true},
		{"read 4 KiB", &fuseops.ReadFileOp{Size: 4096}, true},
		{"read smallIO", &fuseops.ReadFileOp{Size: smallIO}, true},
		{"read smallIO+1", &fuseops.ReadFileOp{Size: smallIO + 1}, false},
		{"read 1 MiB", &fuseops.ReadFileOp{Size: 1 << 20}, false},
		{"write 1 byte", &fuseops.WriteFileOp{Data: make([]byte, 1)}, true},
		{"write smallIO", &fuseops.WriteFileOp{Data: make([]byte, smallIO)}, true},
		{"write 128 KiB", &fuseops.WriteFileOp{Data: make([]byte, 128<<10)}, false},
		{"readdirplus", &fuseops.ReadDirPlusOp{}, false},
		{"fsync", &fuseops.SyncFileOp{}, false},
		{"fallocate", &fuseops.FallocateOp{}, false},
		{"forget", &fuseops.ForgetInodeOp{}, false},
	} {
		if got := describe(c.op).quickFor(c.op); got != c.quick {
			t.Errorf("%s: quickFor = %v, want %v", c.name, got, c.quick)
		}
	}
}
