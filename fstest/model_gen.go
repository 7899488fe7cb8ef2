package fstest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The generator draws operations from a small namespace, so that names collide often
// (renames over existing entries, links, re-creation after unlink), with a long name and
// one with spaces, control characters and non-ASCII letters among them. Offsets and
// lengths cluster around 4096-byte block boundaries (4096*k-1, 4096*k, 4096*k+1), where
// block-based filesystems keep their edge cases. It looks at the reference tree before
// every operation to pick mostly existing targets, so most operations do something.

// Tuning of the generated tree and files.
const (
	genMaxDepth    = 3       // directories nest at most this deep
	genSoftMaxFile = 1 << 20 // offsets and sizes stay mostly below this
	genMaxEntries  = 60      // beyond this many entries, removals are favoured
)

var (
	genDirNames  = []string{"d0", "d1", "d2"}
	genFileNames = []string{
		"f0", "f1", "f2", "f3",
		strings.Repeat("long-name-", 25) + "12345", // 255 bytes: the longest name
		"sp ace\t\x01ä€\u00ff~",                    // bytes a naive encoder mangles
	}
	genXattrNames = []string{"user.a", "user.b", "user." + strings.Repeat("x", 90)}
)

// genEntry is one entry of the reference tree.
type genEntry struct {
	path  string // relative; "" is the root
	typ   uint32 // S_IFMT bits
	size  int64
	depth int // number of path elements
}

// weights of the operations, in AllOpKinds order of importance.
var genWeights = map[OpKind]int{
	OpWrite: 20, OpRead: 10, OpTruncate: 6, OpFallocate: 4, OpMmapWrite: 3,
	OpRename: 7, OpLink: 3, OpUnlink: 6, OpMkdir: 4, OpRmdir: 3, OpSymlink: 3,
	OpSetxattr: 5, OpRemovexattr: 3, OpChmod: 3, OpUtimens: 3, OpFsync: 2,
	OpOpen: 4, OpSlotWrite: 6, OpSlotRead: 3, OpSlotTrunc: 2, OpSlotStat: 2, OpClose: 3,
}

type generator struct {
	rng     *rand.Rand
	ref     string
	kinds   []OpKind
	weights []int
	total   int
	tree    []genEntry
	open    [NumSlots]bool // slot believed open (from the reference's results)
}

func newGenerator(seed uint64, kinds []OpKind, ref string) *generator {
	if kinds == nil {
		kinds = AllOpKinds
	}
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ref: ref, kinds: kinds}
	for _, k := range kinds {
		w := genWeights[k]
		g.weights = append(g.weights, w)
		g.total += w
	}
	return g
}

// refresh re-reads the reference tree.
func (g *generator) refresh() error {
	g.tree = g.tree[:0]
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		dir := g.ref
		if rel != "" {
			dir += "/" + rel
		}
		names, err := readNames(dir)
		if err != nil {
			return err
		}
		for _, name := range names {
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			var st unix.Stat_t
			if err := unix.Lstat(g.ref+"/"+p, &st); err != nil {
				return fmt.Errorf("model generator: lstat %s: %w", p, err)
			}
			e := genEntry{path: p, typ: st.Mode & unix.S_IFMT, size: st.Size, depth: depth + 1}
			g.tree = append(g.tree, e)
			if e.typ == unix.S_IFDIR {
				if err := walk(p, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	g.tree = append(g.tree, genEntry{path: "", typ: unix.S_IFDIR})
	return walk("", 0)
}

// readNames lists a directory, sorted (so the generator never depends on listing order).
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("model generator: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("model generator: list %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// observe learns from the reference's result of op.
func (g *generator) observe(op Op, res opResult) {
	switch op.Kind {
	case OpOpen:
		g.open[op.Slot] = res.errno == 0
	case OpClose:
		g.open[op.Slot] = false
	case OpRemount:
		g.open = [NumSlots]bool{}
	}
}

func (g *generator) chance(pct int) bool { return g.rng.IntN(100) < pct }

func (g *generator) pick(filter func(e genEntry) bool) (genEntry, bool) {
	var cands []genEntry
	for _, e := range g.tree {
		if filter(e) {
			cands = append(cands, e)
		}
	}
	if len(cands) == 0 {
		return genEntry{}, false
	}
	return cands[g.rng.IntN(len(cands))], true
}

func isReg(e genEntry) bool   { return e.typ == unix.S_IFREG }
func isDir(e genEntry) bool   { return e.typ == unix.S_IFDIR }
func notRoot(e genEntry) bool { return e.path != "" }

// newPath is a name from the pool in an existing directory (it may exist).
func (g *generator) newPath(maxParentDepth int) string {
	parent, _ := g.pick(func(e genEntry) bool { return isDir(e) && e.depth <= maxParentDepth })
	var name string
	if g.chance(25) {
		name = genDirNames[g.rng.IntN(len(genDirNames))]
	} else {
		name = genFileNames[g.rng.IntN(len(genFileNames))]
		if g.rng.IntN(len(genFileNames)) < 2 && !g.chance(30) {
			name = genFileNames[g.rng.IntN(4)] // the long and odd names less often
		}
	}
	if parent.path == "" {
		return name
	}
	return parent.path + "/" + name
}

// filePath is mostly an existing regular file (sometimes reached through a symlink),
// otherwise a new path.
func (g *generator) filePath() (string, int64) {
	if g.chance(85) {
		if e, ok := g.pick(isReg); ok {
			return e.path, e.size
		}
	}
	if g.chance(30) {
		if e, ok := g.pick(func(e genEntry) bool { return e.typ == unix.S_IFLNK }); ok {
			return e.path, 0
		}
	}
	return g.newPath(genMaxDepth - 1), 0
}

// anyPath is mostly an existing entry (not the root).
func (g *generator) anyPath() string {
	if g.chance(90) {
		if e, ok := g.pick(notRoot); ok {
			return e.path
		}
	}
	return g.newPath(genMaxDepth - 1)
}

// offset picks a write or read offset for a file of the given size.
func (g *generator) offset(size int64) int64 {
	switch r := g.rng.IntN(20); {
	case r < 9: // around a block boundary
		k := int64(g.rng.IntN(int(max(size, 4096)/4096) + 2))
		return max(0, 4096*k+int64(g.rng.IntN(3))-1)
	case r < 13: // anywhere in or just past the file
		return g.rng.Int64N(size + 4097)
	case r < 16: // at or near the end (appending, extending a partial last block)
		return max(0, size+int64(g.rng.IntN(9))-4)
	case r < 18:
		return 0
	default: // far past the end: a hole
		return g.rng.Int64N(genSoftMaxFile)
	}
}

// length picks a write or read length.
func (g *generator) length() int64 {
	switch r := g.rng.IntN(20); {
	case r < 8:
		return []int64{1, 4095, 4096, 4097, 8191, 8192, 8193, 12288}[g.rng.IntN(8)]
	case r < 15:
		return 1 + g.rng.Int64N(3*4096)
	case r < 19:
		return 1 + g.rng.Int64N(100)
	default: // large: many blocks in one request (encrypted in parallel by cryptfs)
		return 1 + g.rng.Int64N(300<<10)
	}
}

// size picks a new size for a file of the given size.
func (g *generator) size(cur int64) int64 {
	switch r := g.rng.IntN(10); {
	case r < 2:
		return 0
	case r < 5: // a block boundary +-1
		k := int64(g.rng.IntN(int(max(cur, 4096)/4096) + 2))
		return max(0, 4096*k+int64(g.rng.IntN(3))-1)
	case r < 7: // down
		return g.rng.Int64N(cur + 1)
	case r < 9: // up a little
		return cur + 1 + g.rng.Int64N(3*4096)
	default: // up a lot
		return min(cur+1+g.rng.Int64N(256<<10), genSoftMaxFile+8192)
	}
}

func (g *generator) slot() int { return g.rng.IntN(NumSlots) }

// openSlot prefers slots that are open, so slot operations mostly act on a descriptor.
func (g *generator) openSlot() int {
	var open []int
	for i, o := range g.open {
		if o {
			open = append(open, i)
		}
	}
	if len(open) > 0 && g.chance(90) {
		return open[g.rng.IntN(len(open))]
	}
	return g.slot()
}

func (g *generator) kind() OpKind {
	entries := len(g.tree)
	for {
		r := g.rng.IntN(g.total)
		for i, w := range g.weights {
			if r < w {
				k := g.kinds[i]
				// Keep the tree small: beyond the limit, skip most creations.
				if entries > genMaxEntries && (k == OpMkdir || k == OpSymlink || k == OpLink) && g.chance(80) {
					break
				}
				return k
			}
			r -= w
		}
	}
}

// next generates one operation.
func (g *generator) next() Op {
	op := Op{Kind: g.kind()}
	switch op.Kind {
	case OpWrite, OpMmapWrite:
		var size int64
		op.Path, size = g.filePath()
		op.Off, op.Len, op.Seed = g.offset(size), g.length(), g.rng.Uint64()
		if op.Kind == OpMmapWrite && size > 0 {
			op.Off = g.rng.Int64N(size) // inside the file: only that part can be mapped
			if g.chance(50) {
				op.Off = max(0, min(size-1, 4096*g.rng.Int64N(size/4096+1)+int64(g.rng.IntN(3))-1))
			}
		}
	case OpRead:
		var size int64
		op.Path, size = g.filePath()
		op.Off, op.Len = g.offset(size), g.length()
		if g.chance(30) {
			op.Off, op.Len = 0, size+1 // the whole file
		}
	case OpTruncate:
		var size int64
		op.Path, size = g.filePath()
		op.Len = g.size(size)
		if size > genSoftMaxFile && g.chance(50) {
			op.Len = g.rng.Int64N(genSoftMaxFile / 4)
		}
	case OpFallocate:
		var size int64
		op.Path, size = g.filePath()
		if g.chance(50) {
			op.Mode = unix.FALLOC_FL_KEEP_SIZE
		}
		op.Off, op.Len = g.offset(size), g.length()
	case OpRename:
		op.Path = g.anyPath()
		if g.chance(50) {
			op.To = g.newPath(genMaxDepth - 1)
		} else {
			op.To = g.anyPath()
		}
	case OpLink:
		op.Path = g.anyPath()
		if e, ok := g.pick(isReg); ok && g.chance(80) {
			op.Path = e.path
		}
		op.To = g.newPath(genMaxDepth - 1)
	case OpUnlink:
		op.Path = g.anyPath()
		if e, ok := g.pick(func(e genEntry) bool { return !isDir(e) }); ok && g.chance(80) {
			op.Path = e.path
		}
	case OpMkdir:
		op.Path = g.newPath(genMaxDepth - 1)
		if g.chance(70) {
			op.Path = path.Join(path.Dir(op.Path), genDirNames[g.rng.IntN(len(genDirNames))])
			op.Path = strings.TrimPrefix(op.Path, "./")
			if op.Path == "." {
				op.Path = genDirNames[0]
			}
		}
	case OpRmdir:
		op.Path = g.anyPath()
		if e, ok := g.pick(func(e genEntry) bool { return isDir(e) && notRoot(e) }); ok && g.chance(80) {
			op.Path = e.path
		}
	case OpSymlink:
		op.Path = g.newPath(genMaxDepth - 1)
		op.Target = g.symlinkTarget(op.Path)
	case OpSetxattr, OpRemovexattr:
		op.Path = g.anyPath()
		if g.chance(10) {
			op.Path = "" // the root of the run
		}
		op.Name = genXattrNames[g.rng.IntN(len(genXattrNames))]
		if op.Kind == OpSetxattr {
			op.Len, op.Seed = g.rng.Int64N(300), g.rng.Uint64()
			op.Mode = []uint32{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[g.rng.IntN(4)]
		}
	case OpChmod:
		op.Path = g.anyPath()
		op.Mode = uint32(g.rng.IntN(0o1000))
		if g.chance(10) {
			op.Mode |= uint32(g.rng.IntN(8)) << 9 // set-user-ID, set-group-ID, sticky
		}
	case OpUtimens:
		op.Path = g.anyPath()
		for i := range op.Times {
			op.Times[i] = [2]int64{1_000_000_000 + g.rng.Int64N(1_500_000_000), g.rng.Int64N(1_000_000_000)}
			if g.chance(15) {
				op.Times[i] = [2]int64{0, unix.UTIME_OMIT}
			}
		}
		if g.chance(5) {
			op.Times[1][0] = 1<<31 + g.rng.Int64N(1<<31) // past 2038
		}
		if g.chance(40) {
			op.Flags = unix.AT_SYMLINK_NOFOLLOW
		}
	case OpFsync:
		op.Path, _ = g.filePath()
	case OpOpen:
		op.Slot = g.slot()
		op.Path, _ = g.filePath()
		switch r := g.rng.IntN(10); {
		case r < 5:
			op.Flags = unix.O_RDWR | unix.O_CREAT
		case r < 7:
			op.Flags = unix.O_RDONLY
		case r < 9:
			op.Flags = unix.O_RDWR | unix.O_APPEND
		default:
			op.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
		}
	case OpSlotWrite:
		op.Slot = g.openSlot()
		op.Off, op.Len, op.Seed = g.offset(int64(g.rng.IntN(64<<10))), g.length(), g.rng.Uint64()
	case OpSlotRead:
		op.Slot = g.openSlot()
		op.Off, op.Len = g.offset(int64(g.rng.IntN(64<<10))), g.length()
	case OpSlotTrunc:
		op.Slot = g.openSlot()
		op.Len = g.size(int64(g.rng.IntN(64 << 10)))
	case OpSlotStat, OpClose:
		op.Slot = g.openSlot()
	}
	return op
}

// symlinkTarget is a path to an entry of the tree, a dangling or odd target, or
// occasionally a long one. Targets never contain "..": a link may be renamed into
// another directory, and a target that climbed out of the run's directory would then
// resolve to different places on the two sides.
func (g *generator) symlinkTarget(link string) string {
	switch r := g.rng.IntN(10); {
	case r < 6:
		e, _ := g.pick(func(genEntry) bool { return true })
		if e.path == "" {
			return "."
		}
		if dir := path.Dir(link); dir != "." && strings.HasPrefix(e.path, dir+"/") && g.chance(70) {
			return strings.TrimPrefix(e.path, dir+"/") // what it names from where the link is
		}
		return e.path
	case r < 8:
		return "nowhere/" + fmt.Sprint(g.rng.IntN(100))
	case r < 9:
		return string([]byte{'x', byte(1 + g.rng.IntN(126)), '\n', 0xc3, 0xa4}) // valid UTF-8, so op logs round-trip through JSON
	default:
		b := make([]byte, 1+g.rng.IntN(2000))
		for i := range b {
			b[i] = 'a' + byte(g.rng.IntN(26))
			if i%50 == 49 {
				b[i] = '/'
			}
		}
		return string(b)
	}
}
