package fsck

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/ciphertree"
)

// Problem is one damaged or tampered item.
type Problem struct {
	Lower  string `json:"lower"`           // path in the cipher tree
	Plain  string `json:"plain,omitempty"` // plaintext path, where it is known
	Kind   string `json:"kind"`            // diriv, name, sidecar, header, size, block, symlink, xattr, io
	Block  *int64 `json:"block,omitempty"` // for kind block
	Detail string `json:"detail"`
}

// Conflict is a sync tool's conflict copy (docs/format.md, section 12):
// not damage, but a second version of a file that the user should
// reconcile, by removing the copy or renaming it over the original
// through the mount. Its content is checked like any file's.
type Conflict struct {
	Lower    string `json:"lower"`              // path of the copy in the cipher tree
	Plain    string `json:"plain,omitempty"`    // the copy's plaintext path (its shown name), where known
	Original string `json:"original,omitempty"` // plaintext path of the entry it is a copy of, where known
	Tool     string `json:"tool"`               // syncthing, dropbox, nextcloud, owncloud or onedrive
	Shown    bool   `json:"shown"`              // false: hidden, another entry has its name
}

// Report is the outcome of a check.
type Report struct {
	Dirs      int        `json:"dirs"`
	Files     int        `json:"files"`
	Symlinks  int        `json:"symlinks"`
	Others    int        `json:"others"`
	Blocks    int64      `json:"blocks"`
	Xattrs    int        `json:"xattrs"`
	Problems  []Problem  `json:"problems"`
	Conflicts []Conflict `json:"conflicts"`
}

// Clean reports whether no problem was found. Conflict copies are not
// problems.
func (r *Report) Clean() bool { return len(r.Problems) == 0 }

// maxBlockProblems caps the bad blocks listed per file.
const maxBlockProblems = 16

type checker struct {
	s        *crypt.Suite
	r        Report
	progress func(Report)
	seen     map[[2]uint64]bool // hard links are checked once
}

// Check verifies the cipher tree at root with the suite's keys. progress,
// if not nil, is called now and then with the figures so far.
func Check(root string, s *crypt.Suite, progress func(Report)) (*Report, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(fd)
	c := &checker{s: s, progress: progress, seen: map[[2]uint64]bool{}}
	c.dir(fd, root, "/", true)
	if c.r.Problems == nil {
		c.r.Problems = []Problem{}
	}
	if c.r.Conflicts == nil {
		c.r.Conflicts = []Conflict{}
	}
	if progress != nil {
		progress(c.r)
	}
	return &c.r, nil
}

func (c *checker) problem(p Problem) {
	c.r.Problems = append(c.r.Problems, p)
}

func (c *checker) tick() {
	if c.progress != nil && (c.r.Files+c.r.Dirs)%64 == 0 {
		c.progress(c.r)
	}
}

func (c *checker) dir(dfd int, cpath, plain string, atRoot bool) {
	c.r.Dirs++
	c.tick()
	c.xattrs(dfd, cpath, plain)
	iv, err := ciphertree.DirIV(c.s, dfd)
	ivOK := err == nil
	if !ivOK {
		c.problem(Problem{Lower: filepath.Join(cpath, crypt.DirIVFile), Plain: plain, Kind: "diriv",
			Detail: "the directory's name IV is missing or damaged, so none of its names can be decrypted: " + err.Error()})
	}
	// The entries to check: every lower entry but the reserved ones,
	// with its plaintext path where its name decodes.
	type entry struct{ lower, plain string }
	var entries []entry
	join := func(name string) string {
		if plain == "" {
			return ""
		}
		return filepath.Join(plain, name)
	}
	if ivOK {
		l, err := ciphertree.ListDir(c.s, dfd, iv, atRoot)
		if err != nil {
			c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
			return
		}
		conflict := func(e ciphertree.Entry, shown bool) {
			c.r.Conflicts = append(c.r.Conflicts, Conflict{
				Lower: filepath.Join(cpath, e.Lower), Plain: join(e.Name), Original: join(e.Conflict.Original),
				Tool: string(e.Conflict.Tool), Shown: shown,
			})
		}
		for _, e := range l.Entries {
			if e.Conflict != nil {
				conflict(e, true)
			}
			entries = append(entries, entry{e.Lower, join(e.Name)})
		}
		for _, e := range l.Shadowed {
			conflict(e, false)
			entries = append(entries, entry{e.Lower, ""})
		}
		for _, b := range l.Bad {
			kind := "name"
			if crypt.IsLongName(b.Lower) {
				kind = "sidecar"
			}
			c.problem(Problem{Lower: filepath.Join(cpath, b.Lower), Plain: plain, Kind: kind, Detail: "name does not decrypt: " + b.Err.Error()})
			entries = append(entries, entry{b.Lower, ""})
		}
	} else {
		err = ciphertree.ReadDir(dfd, func(name string, _ uint64, _ uint8) bool {
			if !crypt.IsReserved(name, atRoot) {
				entries = append(entries, entry{name, ""})
			}
			return true
		})
		if err != nil {
			c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
			return
		}
	}
	for _, e := range entries {
		name, childPlain := e.lower, e.plain
		path := filepath.Join(cpath, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			c.problem(Problem{Lower: path, Plain: childPlain, Kind: "io", Detail: err.Error()})
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sub, err := ciphertree.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				c.problem(Problem{Lower: path, Plain: childPlain, Kind: "io", Detail: err.Error()})
				continue
			}
			c.dir(sub, path, childPlain, false)
			unix.Close(sub)
		case unix.S_IFREG:
			if c.seen[[2]uint64{st.Dev, st.Ino}] {
				continue
			}
			c.seen[[2]uint64{st.Dev, st.Ino}] = true
			c.file(dfd, name, path, childPlain)
		case unix.S_IFLNK:
			c.r.Symlinks++
			c.symlink(dfd, name, path, childPlain)
		default:
			c.r.Others++
		}
	}
}

func (c *checker) file(dfd int, name, cpath, plain string) {
	c.r.Files++
	c.tick()
	fd, err := ciphertree.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	defer unix.Close(fd)
	c.xattrs(fd, cpath, plain)
	var st unix.Stat_t
	if err := ciphertree.Fstat(fd, &st); err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	size := uint64(st.Size)
	if size == 0 {
		return
	}
	if _, err := crypt.PlainSize(size); err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "size", Detail: "the file was truncated or extended inside a block: " + err.Error()})
	}
	if size < crypt.HeaderLen {
		return
	}
	id, err := ciphertree.ReadHeader(fd)
	var errno unix.Errno
	if errors.As(err, &errno) {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	if err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "header", Detail: err.Error()})
		return
	}
	bad := 0
	blocks, err := ciphertree.CheckBlocks(c.s, fd, id, size, func(block uint64, _ error) {
		if bad < maxBlockProblems {
			b := int64(block)
			c.problem(Problem{Lower: cpath, Plain: plain, Kind: "block", Block: &b,
				Detail: fmt.Sprintf("block %d (plaintext from byte %d) fails authentication: modified, moved or torn",
					block, block*crypt.BlockSize)})
		}
		bad++
	})
	c.r.Blocks += int64(blocks)
	if err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
	}
	if bad > maxBlockProblems {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "block",
			Detail: fmt.Sprintf("%d more bad blocks not listed", bad-maxBlockProblems)})
	}
}

func (c *checker) symlink(dfd int, name, cpath, plain string) {
	stored, err := ciphertree.Readlinkat(dfd, name)
	if err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	if _, err := c.s.DecryptSymlink(stored); err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "symlink", Detail: "target does not decrypt: " + err.Error()})
	}
}

// xattrs checks the user attributes of the file behind fd. A lower file
// system without extended attributes has none to check.
func (c *checker) xattrs(fd int, cpath, plain string) {
	xs, err := ciphertree.Xattrs(c.s, ciphertree.ProcFd(fd))
	if errors.Is(err, unix.EOPNOTSUPP) {
		return
	}
	if err != nil {
		c.problem(Problem{Lower: cpath, Plain: plain, Kind: "io", Detail: err.Error()})
	}
	for _, x := range xs {
		c.r.Xattrs++
		switch {
		case x.NameErr != nil:
			c.problem(Problem{Lower: cpath, Plain: plain, Kind: "xattr", Detail: fmt.Sprintf("attribute name %q does not decrypt: %v", x.Lower, x.NameErr)})
		case x.ValueErr != nil:
			c.problem(Problem{Lower: cpath, Plain: plain, Kind: "xattr", Detail: fmt.Sprintf("value of attribute %q does not decrypt: %v", x.Lower, x.ValueErr)})
		}
	}
}
