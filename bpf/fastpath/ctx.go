package fastpath

import (
	"fmt"
	"unsafe"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// Ctx is struct fuse_fastpath_ctx, the program's context. The generated
// type shows only the first member of the out union (Entry); use
// EntryOut, AttrOut and XattrOut to read the member that matches the
// opcode.
type Ctx = fastpathFuseFastpathCtx

// EntryOut is struct fuse_entry_out, the reply to LOOKUP.
type EntryOut = fastpathFuseEntryOut

// AttrOut is struct fuse_attr_out, the reply to GETATTR.
type AttrOut = fastpathFuseAttrOut

// XattrOut is struct fuse_fastpath_xattr_out, the reply to GETXATTR.
type XattrOut = fastpathFuseFastpathXattrOut

// The union members share the storage of Ctx.Out; these checks fail the
// build if the generated layout ever disagrees.
var (
	_ [unsafe.Sizeof(Ctx{}.Out) - unsafe.Sizeof(EntryOut{})]byte
	_ [unsafe.Sizeof(Ctx{}.Out) - unsafe.Sizeof(AttrOut{})]byte
	_ [unsafe.Sizeof(Ctx{}.Out) - unsafe.Sizeof(XattrOut{})]byte
	_ [unsafe.Sizeof(XattrOut{}) - unsafe.Sizeof(Ctx{}.Out)]byte
)

// EntryOut returns the LOOKUP reply in c.
func (c *Ctx) EntryOut() *EntryOut { return (*EntryOut)(unsafe.Pointer(&c.Out)) }

// AttrOut returns the GETATTR reply in c.
func (c *Ctx) AttrOut() *AttrOut { return (*AttrOut)(unsafe.Pointer(&c.Out)) }

// XattrOut returns the GETXATTR reply in c.
func (c *Ctx) XattrOut() *XattrOut { return (*XattrOut)(unsafe.Pointer(&c.Out)) }

// ctxBytes returns the memory of c, laid out as the C struct.
func ctxBytes(c *Ctx) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(c)), unsafe.Sizeof(*c))
}

// SetName stores name NUL-padded in c.Name and its length in c.NameLen,
// as the kernel does.
func (c *Ctx) SetName(name string) error {
	if len(name) > NameMax {
		return fmt.Errorf("fastpath: name of %d bytes, longest is %d", len(name), NameMax)
	}
	c.Name = [len(c.Name)]int8{}
	for i := 0; i < len(name); i++ {
		c.Name[i] = int8(name[i])
	}
	c.NameLen = uint32(len(name))
	return nil
}

// LookupCtx returns the context of LOOKUP name in directory parent.
func LookupCtx(parent uint64, name string) (*Ctx, error) {
	c := &Ctx{Opcode: uint32(fuseop.Lookup), Nodeid: parent}
	if err := c.SetName(name); err != nil {
		return nil, err
	}
	return c, nil
}

// GetattrCtx returns the context of GETATTR of nodeid.
func GetattrCtx(nodeid uint64) *Ctx {
	return &Ctx{Opcode: uint32(fuseop.Getattr), Nodeid: nodeid}
}

// GetxattrCtx returns the context of GETXATTR name of nodeid into a
// buffer of size bytes (0 asks for the length).
func GetxattrCtx(nodeid uint64, name string, size uint32) (*Ctx, error) {
	c := &Ctx{Opcode: uint32(fuseop.Getxattr), Nodeid: nodeid, Size: size}
	if err := c.SetName(name); err != nil {
		return nil, err
	}
	return c, nil
}
