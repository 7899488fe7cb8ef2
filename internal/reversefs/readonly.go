package reversefs

import (
	"context"
	"syscall"

	"github.com/jacobsa/fuse/fuseops"
)

// The view is read-only: the mount is (MS_RDONLY, so the kernel refuses
// most changes itself), and every request that would change something
// fails with EROFS should one arrive anyway.

func (fs *FS) SetInodeAttributes(context.Context, *fuseops.SetInodeAttributesOp) error {
	return syscall.EROFS
}
func (fs *FS) MkDir(context.Context, *fuseops.MkDirOp) error                 { return syscall.EROFS }
func (fs *FS) MkNode(context.Context, *fuseops.MkNodeOp) error               { return syscall.EROFS }
func (fs *FS) CreateFile(context.Context, *fuseops.CreateFileOp) error       { return syscall.EROFS }
func (fs *FS) CreateLink(context.Context, *fuseops.CreateLinkOp) error       { return syscall.EROFS }
func (fs *FS) CreateSymlink(context.Context, *fuseops.CreateSymlinkOp) error { return syscall.EROFS }
func (fs *FS) Rename(context.Context, *fuseops.RenameOp) error               { return syscall.EROFS }
func (fs *FS) RmDir(context.Context, *fuseops.RmDirOp) error                 { return syscall.EROFS }
func (fs *FS) Unlink(context.Context, *fuseops.UnlinkOp) error               { return syscall.EROFS }
func (fs *FS) WriteFile(context.Context, *fuseops.WriteFileOp) error         { return syscall.EROFS }
func (fs *FS) RemoveXattr(context.Context, *fuseops.RemoveXattrOp) error     { return syscall.EROFS }
func (fs *FS) SetXattr(context.Context, *fuseops.SetXattrOp) error           { return syscall.EROFS }
func (fs *FS) Fallocate(context.Context, *fuseops.FallocateOp) error         { return syscall.EROFS }
