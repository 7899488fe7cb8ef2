package fstest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// The model checker: a seeded random-operation exerciser in the style of fsx and of the
// random testers of the filesystems people trust. It applies one sequence of operations to
// two directories, the one under test (SUT, e.g. a directory inside a cryptfs mount) and a
// reference (a plain directory on a kernel filesystem), and requires both to behave the
// same: every operation must return the same errno and the same data on both sides, and
// every CheckEvery operations (and at the end) the two trees must be equal in names, types,
// modes, owners, sizes, link counts and hard-link structure, contents, symlink targets and
// user extended attributes (CompareTrees).
//
// Operations are generated from a seeded PRNG; the generator looks only at the reference
// tree (which exists and how large it is), never at the SUT, so one seed always gives the
// same operations. Every operation is self-contained (paths, offsets, lengths and the seed
// of the bytes it writes), so any subsequence can be replayed on fresh directories; Shrink
// uses that to cut a failing run down to a short sequence that still fails (delta
// debugging). Writes through mmap run in a helper process, the test binary re-executed
// (see mmapHelperEnv).

// OpKind names a model operation.
type OpKind string

// The operations. Path-based operations open, act and close; the slot operations act on a
// descriptor kept open across operations (slot 0..NumSlots-1), so that open, renamed,
// unlinked and truncated files are exercised through live descriptors too.
const (
	OpWrite       OpKind = "write"       // open Path O_WRONLY|O_CREAT (0644), pwrite Len bytes at Off, close
	OpRead        OpKind = "read"        // open Path O_RDONLY, pread Len bytes at Off, close
	OpTruncate    OpKind = "truncate"    // truncate(Path, Len)
	OpFallocate   OpKind = "fallocate"   // open Path O_RDWR, fallocate(Mode, Off, Len), close
	OpMmapWrite   OpKind = "mmap-write"  // in the helper process: map Path, copy Len bytes at Off (clipped to the size), msync
	OpRename      OpKind = "rename"      // rename(Path, To)
	OpLink        OpKind = "link"        // link(Path, To)
	OpUnlink      OpKind = "unlink"      // unlink(Path)
	OpMkdir       OpKind = "mkdir"       // mkdir(Path, 0755)
	OpRmdir       OpKind = "rmdir"       // rmdir(Path)
	OpSymlink     OpKind = "symlink"     // symlink(Target, Path)
	OpSetxattr    OpKind = "setxattr"    // lsetxattr(Path, Name, Len bytes, flags Mode)
	OpRemovexattr OpKind = "removexattr" // lremovexattr(Path, Name)
	OpChmod       OpKind = "chmod"       // chmod(Path, Mode)
	OpUtimens     OpKind = "utimens"     // utimensat(Path, Times, Flags), then the times read back
	OpFsync       OpKind = "fsync"       // open Path O_RDONLY, fsync, close
	OpOpen        OpKind = "open"        // close Slot if open, then open Path with Flags into Slot
	OpSlotWrite   OpKind = "slot-write"  // pwrite Len bytes at Off through Slot
	OpSlotRead    OpKind = "slot-read"   // pread Len bytes at Off through Slot
	OpSlotTrunc   OpKind = "slot-trunc"  // ftruncate(Slot, Len)
	OpSlotStat    OpKind = "slot-stat"   // fstat(Slot): size, mode, link count
	OpClose       OpKind = "close"       // close(Slot)
	OpRemount     OpKind = "remount"     // close every slot, then ModelConfig.Remount (the reference is left alone)
)

// AllOpKinds lists every operation the generator knows.
var AllOpKinds = []OpKind{
	OpWrite, OpRead, OpTruncate, OpFallocate, OpMmapWrite, OpRename, OpLink, OpUnlink,
	OpMkdir, OpRmdir, OpSymlink, OpSetxattr, OpRemovexattr, OpChmod, OpUtimens, OpFsync,
	OpOpen, OpSlotWrite, OpSlotRead, OpSlotTrunc, OpSlotStat, OpClose,
}

// AllOpKinds does not list OpRemount: the generator emits it every RemountEvery operations
// when a Remount function is configured.

// NumSlots is the number of descriptor slots the slot operations use.
const NumSlots = 4

// Op is one self-contained operation. Paths are relative to the directory the operation is
// applied to; the bytes written are randBytes(Seed, Len), so an op log stays small.
type Op struct {
	Kind   OpKind      `json:"op"`
	Path   string      `json:"path,omitempty"`
	To     string      `json:"to,omitempty"`     // rename and link destination
	Target string      `json:"target,omitempty"` // symlink target
	Name   string      `json:"name,omitempty"`   // xattr name
	Off    int64       `json:"off,omitempty"`
	Len    int64       `json:"len,omitempty"` // bytes written or read, new size, allocation length, xattr value length
	Seed   uint64      `json:"seed,omitempty"`
	Mode   uint32      `json:"mode,omitempty"`  // chmod mode, fallocate mode, xattr flags
	Flags  int         `json:"flags,omitempty"` // open flags (OpOpen), AT_* flags (OpUtimens)
	Slot   int         `json:"slot,omitempty"`
	Times  [2][2]int64 `json:"times,omitempty"` // OpUtimens: atime and mtime as {sec, nsec}; nsec may be UTIME_OMIT
}

// String formats the operation as one line of an op log.
func (op Op) String() string {
	if op.Kind == OpRemount {
		return string(op.Kind)
	}
	var b strings.Builder
	b.WriteString(string(op.Kind))
	if op.Kind == OpOpen || op.Kind == OpSlotWrite || op.Kind == OpSlotRead || op.Kind == OpSlotTrunc ||
		op.Kind == OpSlotStat || op.Kind == OpClose {
		fmt.Fprintf(&b, " slot=%d", op.Slot)
	}
	if op.Path != "" || op.Kind != OpSlotWrite && op.Kind != OpSlotRead && op.Kind != OpSlotTrunc &&
		op.Kind != OpSlotStat && op.Kind != OpClose {
		fmt.Fprintf(&b, " %q", op.Path)
	}
	switch op.Kind {
	case OpWrite, OpSlotWrite, OpMmapWrite:
		fmt.Fprintf(&b, " off=%d len=%d seed=%d", op.Off, op.Len, op.Seed)
	case OpRead, OpSlotRead:
		fmt.Fprintf(&b, " off=%d len=%d", op.Off, op.Len)
	case OpTruncate, OpSlotTrunc:
		fmt.Fprintf(&b, " size=%d", op.Len)
	case OpFallocate:
		fmt.Fprintf(&b, " mode=%d off=%d len=%d", op.Mode, op.Off, op.Len)
	case OpRename, OpLink:
		fmt.Fprintf(&b, " -> %q", op.To)
	case OpSymlink:
		fmt.Fprintf(&b, " target=%q", op.Target)
	case OpSetxattr:
		fmt.Fprintf(&b, " name=%q len=%d seed=%d flags=%d", op.Name, op.Len, op.Seed, op.Mode)
	case OpRemovexattr:
		fmt.Fprintf(&b, " name=%q", op.Name)
	case OpChmod:
		fmt.Fprintf(&b, " mode=%#o", op.Mode)
	case OpUtimens:
		fmt.Fprintf(&b, " atime=%s mtime=%s flags=%#x", fmtTime(op.Times[0]), fmtTime(op.Times[1]), op.Flags)
	case OpOpen:
		fmt.Fprintf(&b, " flags=%s", fmtOpenFlags(op.Flags))
	}
	return b.String()
}

// FormatOps formats an op log, one numbered operation per line.
func FormatOps(ops []Op) string {
	var b strings.Builder
	for i, op := range ops {
		fmt.Fprintf(&b, "  %4d  %s\n", i, op)
	}
	return b.String()
}

// SaveOps writes an op log as JSON, for ReplayFile and FSTEST_MODEL_REPLAY.
func SaveOps(path string, ops []Op) error {
	data, err := json.MarshalIndent(ops, "", " ")
	if err != nil {
		return fmt.Errorf("encode op log: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save op log: %w", err)
	}
	return nil
}

// LoadOps reads an op log written by SaveOps.
func LoadOps(path string) ([]Op, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load op log: %w", err)
	}
	var ops []Op
	if err := json.Unmarshal(data, &ops); err != nil {
		return nil, fmt.Errorf("decode op log %s: %w", path, err)
	}
	return ops, nil
}

// ModelConfig configures a generated run.
type ModelConfig struct {
	Seed       uint64   // PRNG seed; the same seed gives the same operations
	Ops        int      // number of operations
	CheckEvery int      // compare the trees after every CheckEvery operations (0: 100) and at the end
	Kinds      []OpKind // operations to generate; nil means AllOpKinds

	// Remount, if set, unmounts and mounts the filesystem under test again and returns the
	// new path of the SUT directory. RunModel emits an OpRemount every RemountEvery
	// operations (0: 2000), after which the trees are compared, so that the reference is
	// checked against what was actually stored, not against caches.
	Remount      func() (string, error)
	RemountEvery int

	// afterOp, if set, runs after operation i was applied to both sides (tests of the
	// checker itself plant differences with it).
	afterOp func(i int)
}

// Divergence is a difference between the directory under test and the reference.
type Divergence struct {
	Seed   uint64 // of the generated run (0 for replays)
	Index  int    // the operation after which it was seen (len(Ops)-1 for the final check)
	Op     *Op    // the operation whose result differed, nil for a tree difference
	Detail string
	Ops    []Op // the operations applied, up to and including Index
}

func (d *Divergence) Error() string {
	if d.Op != nil {
		return fmt.Sprintf("operation %d (%s): %s", d.Index, d.Op, d.Detail)
	}
	return fmt.Sprintf("trees differ after operation %d: %s", d.Index, d.Detail)
}

// RunModel generates cfg.Ops operations from cfg.Seed and applies each to sut and ref, two
// existing empty directories. It returns the operations applied and the first divergence
// (nil when the two behaved identically). err reports a failure of the checker itself
// (for example its helper process), not of a filesystem.
func RunModel(sut, ref string, cfg ModelConfig) (ops []Op, div *Divergence, err error) {
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 100
	}
	if cfg.RemountEvery <= 0 {
		cfg.RemountEvery = 2000
	}
	g := newGenerator(cfg.Seed, cfg.Kinds, ref)
	r, err := newRunner(sut, ref, cfg.Remount)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	for i := 0; i < cfg.Ops; i++ {
		if err := g.refresh(); err != nil {
			return ops, nil, err
		}
		op := g.next()
		if cfg.Remount != nil && (i+1)%cfg.RemountEvery == 0 {
			op = Op{Kind: OpRemount}
		}
		ops = append(ops, op)
		d, refRes, err := r.step(i, op)
		if err != nil {
			return ops, nil, err
		}
		if cfg.afterOp != nil {
			cfg.afterOp(i)
		}
		if d == nil && ((i+1)%cfg.CheckEvery == 0 || i == cfg.Ops-1 || op.Kind == OpRemount) {
			d = r.check(i)
		}
		if d != nil {
			d.Seed, d.Ops = cfg.Seed, ops
			return ops, d, nil
		}
		g.observe(op, refRes)
	}
	return ops, nil, nil
}

// Replay applies ops to sut and ref, two existing empty directories, comparing every
// result, and the trees after every cfg.CheckEvery operations (0: only at the end) and
// after every OpRemount, which calls cfg.Remount. The other fields of cfg are ignored.
func Replay(sut, ref string, ops []Op, cfg ModelConfig) (*Divergence, error) {
	r, err := newRunner(sut, ref, cfg.Remount)
	if err != nil {
		return nil, err
	}
	defer r.close()
	for i, op := range ops {
		d, _, err := r.step(i, op)
		if err != nil {
			return nil, err
		}
		if d == nil && (cfg.CheckEvery > 0 && (i+1)%cfg.CheckEvery == 0 || i == len(ops)-1 || op.Kind == OpRemount) {
			d = r.check(i)
		}
		if d != nil {
			d.Ops = ops[:i+1]
			return d, nil
		}
	}
	return nil, nil
}

// Shrink returns a short subsequence of ops for which fails still reports true: the ddmin
// delta-debugging algorithm (Zeller and Hildebrandt), which removes ever smaller chunks and
// keeps every removal after which the failure persists, then tries dropping single
// operations. ops itself must fail. It stops early, returning the shortest failing sequence
// found so far, when budget runs out. fails returns an error only when it could not run
// the sequence at all; Shrink then stops and returns it.
func Shrink(ops []Op, fails func([]Op) (bool, error), budget time.Duration) ([]Op, error) {
	deadline := time.Now().Add(budget)
	cur := append([]Op(nil), ops...)
	n := 2
	for len(cur) >= 2 && time.Now().Before(deadline) {
		chunk := (len(cur) + n - 1) / n
		reduced := false
		// Try each complement: the sequence without one chunk.
		for start := 0; start < len(cur) && time.Now().Before(deadline); start += chunk {
			end := min(start+chunk, len(cur))
			cand := append(append([]Op(nil), cur[:start]...), cur[end:]...)
			if len(cand) == 0 {
				continue
			}
			ok, err := fails(cand)
			if err != nil {
				return cur, err
			}
			if ok {
				cur = cand
				n = max(n-1, 2)
				reduced = true
				break
			}
		}
		if !reduced {
			if n >= len(cur) {
				break // 1-minimal: no single operation can be removed
			}
			n = min(2*n, len(cur))
		}
	}
	return cur, nil
}
