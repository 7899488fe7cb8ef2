package fastpath

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestLayoutMatchesObject checks the Go types against the BTF of the
// embedded object: Run and the map operations rely on byte-identical
// layouts.
func TestLayoutMatchesObject(t *testing.T) {
	spec, err := loadFastpath()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		size uintptr
	}{
		{"fuse_fastpath_ctx", unsafe.Sizeof(Ctx{})},
		{"fuse_attr", unsafe.Sizeof(Attr{})},
		{"fuse_entry_out", unsafe.Sizeof(EntryOut{})},
		{"fuse_attr_out", unsafe.Sizeof(AttrOut{})},
		{"fuse_fastpath_xattr_out", unsafe.Sizeof(XattrOut{})},
		{"fp_attr", unsafe.Sizeof(fastpathFpAttr{})},
		{"fp_name_key", unsafe.Sizeof(fastpathFpNameKey{})},
		{"fp_dentry", unsafe.Sizeof(fastpathFpDentry{})},
		{"fp_xattr", unsafe.Sizeof(fastpathFpXattr{})},
		{"fp_op_stats", unsafe.Sizeof(fastpathFpOpStats{})},
	}
	for _, tt := range tests {
		var s *btf.Struct
		if err := spec.Types.TypeByName(tt.name, &s); err != nil {
			t.Errorf("BTF type %s: %v", tt.name, err)
			continue
		}
		if uintptr(s.Size) != tt.size {
			t.Errorf("struct %s: %d bytes in C, %d in Go", tt.name, s.Size, tt.size)
		}
	}
	var s *btf.Struct
	if err := spec.Types.TypeByName("fuse_fastpath_ctx", &s); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Members {
		if m.Name == "out" && uintptr(m.Offset.Bytes()) != unsafe.Offsetof(Ctx{}.Out) {
			t.Errorf("ctx.out at %d in C, %d in Go", m.Offset.Bytes(), unsafe.Offsetof(Ctx{}.Out))
		}
	}
	if got, want := len(Ctx{}.Name), NameMax+1; got != want {
		t.Errorf("ctx.name has %d bytes, want %d", got, want)
	}
	if got := len(XattrOut{}.Value); got != XattrMax {
		t.Errorf("xattr value has %d bytes, want %d", got, XattrMax)
	}
}

// TestMapSpecs checks the documented map types and capacities against the
// object.
func TestMapSpecs(t *testing.T) {
	spec, err := loadFastpath()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		typ  ebpf.MapType
		max  uint32
	}{
		{"attrs", ebpf.LRUHash, MaxAttrs},
		{"dentries", ebpf.LRUHash, MaxDentries},
		{"xattrs", ebpf.LRUHash, MaxXattrs},
		{"served_lookups", ebpf.Hash, MaxNodes},
		{"op_stats", ebpf.PerCPUArray, statsSlots},
	}
	for _, tt := range tests {
		m, ok := spec.Maps[tt.name]
		if !ok {
			t.Errorf("map %s missing", tt.name)
			continue
		}
		if m.Type != tt.typ || m.MaxEntries != tt.max {
			t.Errorf("map %s: %v with %d entries, want %v with %d", tt.name, m.Type, m.MaxEntries, tt.typ, tt.max)
		}
	}
}
