package fastpath

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fuseop"
)

// Return values of the program, as in fuse_fastpath.h. Any negative value
// is an errno the request fails with.
const (
	Served int32 = 0 // FUSE_FASTPATH_SERVED: ctx.out holds the reply
	Upcall int32 = 1 // FUSE_FASTPATH_UPCALL: the daemon answers
)

// Limits of the context (fuse_fastpath.h).
const (
	// NameMax is the longest entry or xattr name the program can answer
	// for (FUSE_FASTPATH_NAME_MAX - 1); longer names are refused by Put*.
	NameMax = 255
	// XattrMax is the longest xattr value the program returns in the
	// kernel (FUSE_FASTPATH_XATTR_MAX). Longer values are stored by size
	// only: size queries and -ERANGE are still answered in the kernel,
	// the value itself goes to the daemon.
	XattrMax = 256
)

// Map capacities, as compiled into fastpath.bpf.c.
const (
	MaxAttrs    = 32768 // attrs (LRU)
	MaxDentries = 32768 // dentries (LRU)
	MaxXattrs   = 8192  // xattrs (LRU)
	MaxNodes    = 65536 // served_lookups (never evicted)
	statsSlots  = 64    // op_stats slots; opcodes >= 64 share slot 0
)

// fpXattrNegative is FP_XATTR_NEGATIVE in fastpath.bpf.c.
const fpXattrNegative = 1

// fpUserXattrsOnly is FP_USER_XATTRS_ONLY in fastpath.bpf.c.
const fpUserXattrsOnly = 1

// ioctlAttach is FUSE_DEV_IOC_FASTPATH_ATTACH = _IOW(229, 0x80, __s32).
const ioctlAttach = 1<<30 | 4<<16 | 229<<8 | 0x80

// ErrUnavailable is wrapped by errors that mean the running kernel or the
// caller's privileges do not allow the eBPF fast path (no BPF, no
// CAP_BPF/CAP_SYS_ADMIN, no syscall program type, no attach ioctl). Callers
// choosing a fast-path tier automatically fall back when errors.Is(err,
// ErrUnavailable).
var ErrUnavailable = errors.New("eBPF fast path unavailable")

// Attr is struct fuse_attr as the kernel expects it in a LOOKUP or GETATTR
// reply. Build it with AttrFromInodeAttributes.
type Attr = fastpathFuseAttr

// OpStats counts the fast-path decisions for one opcode.
type OpStats struct {
	Hits   uint64 // answered in the kernel, error answers included
	Misses uint64 // sent to the daemon
}

// Stats maps opcodes to their counters. Only opcodes the program saw are
// present; opcodes >= 64 are all counted under opcode 0.
type Stats map[fuseop.Opcode]OpStats

// FastPath is the loaded program and its maps. Its methods are safe for
// concurrent use; ordering against replies is the caller's job (see the
// package documentation).
type FastPath struct {
	objs fastpathObjects

	mu sync.Mutex
	// xattrNames indexes the xattr names put per nodeid, so DropXattrs
	// and Forget need not scan the whole xattrs map. It may name
	// entries the LRU has since evicted; deleting those is harmless.
	xattrNames map[uint64]map[string]struct{}
}

// Load loads the program and creates its maps in the running kernel. The
// error wraps ErrUnavailable when BPF is not usable here (missing
// privileges, kernel without BPF or without syscall programs); any other
// error (a verifier rejection, say) is a bug.
func Load() (*FastPath, error) {
	spec, err := loadFastpath()
	if err != nil {
		return nil, fmt.Errorf("fastpath: parse embedded object: %w", err)
	}
	f := &FastPath{xattrNames: make(map[uint64]map[string]struct{})}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		if unavailable(err) {
			return nil, fmt.Errorf("fastpath: load: %w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("fastpath: load: %w", err)
	}
	return f, nil
}

// unavailable reports whether a load error means "no BPF for us here"
// rather than a broken program.
func unavailable(err error) bool {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return false
	}
	return errors.Is(err, ebpf.ErrNotSupported) ||
		errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.ENOSYS)
}

// Close releases the program and the maps. A connection the program is
// attached to keeps its own reference.
func (f *FastPath) Close() error {
	if err := f.objs.Close(); err != nil {
		return fmt.Errorf("fastpath: close: %w", err)
	}
	return nil
}

// Program returns the loaded program, to be attached to a FUSE connection.
func (f *FastPath) Program() *ebpf.Program {
	return f.objs.FuseFastpath
}

// Attach attaches the program to the FUSE connection behind devFD, an open
// /dev/fuse file descriptor, with the FUSE_DEV_IOC_FASTPATH_ATTACH ioctl
// of the cryptfs kernel patch. On a kernel without the patch the error
// wraps ErrUnavailable.
func (f *FastPath) Attach(devFD int) error {
	if err := fastpathIoctl(devFD, int32(f.objs.FuseFastpath.FD())); err != nil {
		return fmt.Errorf("fastpath: attach to fd %d: %w", devFD, err)
	}
	return nil
}

// Detach detaches whatever program is attached to the connection behind
// devFD.
func Detach(devFD int) error {
	if err := fastpathIoctl(devFD, -1); err != nil {
		return fmt.Errorf("fastpath: detach from fd %d: %w", devFD, err)
	}
	return nil
}

func fastpathIoctl(devFD int, progFD int32) error {
	err := unix.IoctlSetPointerInt(devFD, ioctlAttach, int(progFD))
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// validity splits a duration into the kernel's seconds and nanoseconds;
// negative durations mean no caching.
func validity(d time.Duration) (sec uint64, nsec uint32) {
	if d <= 0 {
		return 0, 0
	}
	return uint64(d / time.Second), uint32(d % time.Second)
}

// nameKey builds the canonical key of (nodeid, name).
func nameKey(nodeid uint64, name string) (fastpathFpNameKey, error) {
	var k fastpathFpNameKey
	if len(name) == 0 || len(name) > NameMax {
		return k, fmt.Errorf("name length %d not in 1..%d", len(name), NameMax)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return k, fmt.Errorf("name %q contains NUL", name)
		}
	}
	k.Nodeid = nodeid
	k.NameLen = uint32(len(name))
	copy(k.Name[:], name)
	return k, nil
}

// del deletes key from m; an absent key is not an error.
func del(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// PutAttr publishes the attributes of nodeid, to be served for valid.
// a.Ino must equal nodeid.
func (f *FastPath) PutAttr(nodeid uint64, a Attr, valid time.Duration) error {
	if a.Ino != nodeid {
		return fmt.Errorf("fastpath: put attr %d: attr.Ino is %d", nodeid, a.Ino)
	}
	v := fastpathFpAttr{Attr: a}
	v.ValidSec, v.ValidNsec = validity(valid)
	if err := f.objs.Attrs.Put(nodeid, &v); err != nil {
		return fmt.Errorf("fastpath: put attr %d: %w", nodeid, err)
	}
	return nil
}

// DropAttr withdraws the attributes of nodeid: GETATTR and positive
// LOOKUPs resolving to it go to the daemon from now on.
func (f *FastPath) DropAttr(nodeid uint64) error {
	if err := del(f.objs.Attrs, nodeid); err != nil {
		return fmt.Errorf("fastpath: drop attr %d: %w", nodeid, err)
	}
	return nil
}

// PutEntry publishes the entry name in directory parent: child is its
// nodeid (0 for a negative entry) and valid the entry validity the kernel
// gets. A positive entry is served only while child's attributes are
// present.
func (f *FastPath) PutEntry(parent uint64, name string, child, generation uint64, valid time.Duration) error {
	k, err := nameKey(parent, name)
	if err != nil {
		return fmt.Errorf("fastpath: put entry %d/%q: %w", parent, name, err)
	}
	v := fastpathFpDentry{Child: child, Generation: generation}
	v.ValidSec, v.ValidNsec = validity(valid)
	if err := f.objs.Dentries.Put(&k, &v); err != nil {
		return fmt.Errorf("fastpath: put entry %d/%q: %w", parent, name, err)
	}
	return nil
}

// DropEntry withdraws the entry name in directory parent.
func (f *FastPath) DropEntry(parent uint64, name string) error {
	k, err := nameKey(parent, name)
	if err != nil {
		return fmt.Errorf("fastpath: drop entry %d/%q: %w", parent, name, err)
	}
	if err := del(f.objs.Dentries, &k); err != nil {
		return fmt.Errorf("fastpath: drop entry %d/%q: %w", parent, name, err)
	}
	return nil
}

// PutXattr publishes the extended attribute name of nodeid. A nil value
// publishes its absence (GETXATTR fails with ENODATA); an empty non-nil
// value is an attribute of length 0.
func (f *FastPath) PutXattr(nodeid uint64, name string, value []byte) error {
	k, err := nameKey(nodeid, name)
	if err != nil {
		return fmt.Errorf("fastpath: put xattr %d %q: %w", nodeid, name, err)
	}
	var v fastpathFpXattr
	switch {
	case value == nil:
		v.Flags = fpXattrNegative
	case len(value) > math.MaxUint32:
		return fmt.Errorf("fastpath: put xattr %d %q: value of %d bytes", nodeid, name, len(value))
	default:
		v.Size = uint32(len(value))
		if len(value) <= XattrMax {
			copy(v.Value[:], value)
		}
	}
	f.mu.Lock()
	names := f.xattrNames[nodeid]
	if names == nil {
		names = make(map[string]struct{})
		f.xattrNames[nodeid] = names
	}
	names[name] = struct{}{}
	f.mu.Unlock()
	if err := f.objs.Xattrs.Put(&k, &v); err != nil {
		return fmt.Errorf("fastpath: put xattr %d %q: %w", nodeid, name, err)
	}
	return nil
}

// DropXattr withdraws the extended attribute name of nodeid.
func (f *FastPath) DropXattr(nodeid uint64, name string) error {
	k, err := nameKey(nodeid, name)
	if err != nil {
		return fmt.Errorf("fastpath: drop xattr %d %q: %w", nodeid, name, err)
	}
	f.mu.Lock()
	if names := f.xattrNames[nodeid]; names != nil {
		delete(names, name)
		if len(names) == 0 {
			delete(f.xattrNames, nodeid)
		}
	}
	f.mu.Unlock()
	if err := del(f.objs.Xattrs, &k); err != nil {
		return fmt.Errorf("fastpath: drop xattr %d %q: %w", nodeid, name, err)
	}
	return nil
}

// DropXattrs withdraws every extended attribute of nodeid that was put
// through f.
func (f *FastPath) DropXattrs(nodeid uint64) error {
	f.mu.Lock()
	names := f.xattrNames[nodeid]
	delete(f.xattrNames, nodeid)
	f.mu.Unlock()
	var errs []error
	for name := range names {
		k, err := nameKey(nodeid, name)
		if err == nil {
			err = del(f.objs.Xattrs, &k)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("fastpath: drop xattr %d %q: %w", nodeid, name, err))
		}
	}
	return errors.Join(errs...)
}

// ServedLookups returns how many positive LOOKUPs of nodeid the program has
// served since the counter was created. It only grows until Forget;
// the caller keeps the part it has already accounted for.
func (f *FastPath) ServedLookups(nodeid uint64) (uint64, error) {
	var n uint64
	err := f.objs.ServedLookups.Lookup(nodeid, &n)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fastpath: read served lookups of %d: %w", nodeid, err)
	}
	return n, nil
}

// Forget drops everything published about a node the daemon has
// forgotten: its attributes, its served-lookup counter and the xattrs put
// through f. The attributes go first, so no LOOKUP can be served for the
// node once the counter is gone. Entries naming the node as child are the
// caller's to delete.
func (f *FastPath) Forget(nodeid uint64) error {
	if err := f.DropAttr(nodeid); err != nil {
		return err
	}
	if err := del(f.objs.ServedLookups, nodeid); err != nil {
		return fmt.Errorf("fastpath: delete served lookups of %d: %w", nodeid, err)
	}
	return f.DropXattrs(nodeid)
}

// Stats returns the per-opcode hit and miss counters, summed over CPUs.
func (f *FastPath) Stats() (Stats, error) {
	st := make(Stats)
	var per []fastpathFpOpStats
	for slot := uint32(0); slot < statsSlots; slot++ {
		if err := f.objs.OpStats.Lookup(slot, &per); err != nil {
			return nil, fmt.Errorf("fastpath: read op_stats slot %d: %w", slot, err)
		}
		var sum OpStats
		for _, c := range per {
			sum.Hits += c.Hits
			sum.Misses += c.Misses
		}
		if sum != (OpStats{}) {
			st[fuseop.Opcode(slot)] = sum
		}
	}
	return st, nil
}

// Run runs the program once on a copy of in with BPF_PROG_TEST_RUN and
// returns its return value (Served, Upcall or a negative errno) and the
// context as the program left it.
func (f *FastPath) Run(in *Ctx) (ret int32, out *Ctx, err error) {
	return RunProgram(f.objs.FuseFastpath, in)
}

// RunProgram is Run for a fast-path program obtained elsewhere, e.g. the
// one a running daemon loaded (ebpf.NewProgramFromID), together with the
// maps that daemon fills.
func RunProgram(p *ebpf.Program, in *Ctx) (ret int32, out *Ctx, err error) {
	// The context travels as raw bytes: encoding/binary would zero the
	// blank padding field that stands for the larger union members.
	out = new(Ctx)
	*out = *in
	buf := ctxBytes(out)
	r, err := p.Run(&ebpf.RunOptions{Context: buf, ContextOut: buf})
	if err != nil {
		return 0, nil, fmt.Errorf("fastpath: test run: %w", err)
	}
	return int32(r), out, nil
}

// SetUserXattrsOnly declares (on) that the file system stores extended
// attributes in the "user." namespace only: the program then answers
// GETXATTR of any other name with -EOPNOTSUPP (unsupported namespace)
// without a map entry (the kernel asks for security.capability before
// every write, ls for security.selinux and system.posix_acl_access until
// it is told EOPNOTSUPP).
func (f *FastPath) SetUserXattrsOnly(on bool) error {
	var v fastpathFpSettings
	if on {
		v.Flags = fpUserXattrsOnly
	}
	if err := f.objs.Settings.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("fastpath: update settings: %w", err)
	}
	return nil
}
