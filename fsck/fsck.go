package fsck

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// Problem is one damaged or tampered item.
type Problem struct {
	Lower  string `json:"lower"`           // path in the cipher tree
	Plain  string `json:"plain,omitempty"` // plaintext path, where it is known
	Kind   string `json:"kind"`            // diriv, name, sidecar, header, size, block, symlink, xattr, io
	Block  *int64 `json:"block,omitempty"` // for kind block
	Detail string `json:"detail"`
}

// Report is the outcome of a check.
type Report struct {
	Dirs     int       `json:"dirs"`
	Files    int       `json:"files"`
	Symlinks int       `json:"symlinks"`
	Others   int       `json:"others"`
	Blocks   int64     `json:"blocks"`
	Xattrs   int       `json:"xattrs"`
	Problems []Problem `json:"problems"`
}

// Clean reports whether no problem was found.
func (r *Report) Clean() bool { return len(r.Problems) == 0 }

// maxBlockProblems caps the bad blocks listed per file.
const maxBlockProblems = 16

type checker struct {
	s        *crypt.Suite
	r        Report
	progress func(Report)
	seen     map[[2]uint64]bool // hard links are checked once
	buf      []byte
	plain    []byte
}

// Check verifies the cipher tree at root with the suite's keys. progress,
// if not nil, is called now and then with the figures so far.
func Check(root string, s *crypt.Suite, progress func(Report)) (*Report, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(fd)
	c := &checker{s: s, progress: progress, seen: map[[2]uint64]bool{},
		buf: make([]byte, 256*crypt.CipherBlockSize), plain: make([]byte, 0, crypt.BlockSize)}
	c.dir(fd, root, "/", true)
	if c.r.Problems == nil {
		c.r.Problems = []Problem{}
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

func (c *checker) dir(dfd int, lower, plain string, atRoot bool) {
	c.r.Dirs++
	c.tick()
	c.xattrs(dfd, lower, plain)
	var iv crypt.DirIV
	ivOK := true
	if !c.s.DeterministicNames() {
		var err error
		if iv, err = readIV(dfd); err != nil {
			c.problem(Problem{Lower: filepath.Join(lower, crypt.DirIVFile), Plain: plain, Kind: "diriv",
				Detail: "the directory's name IV is missing or damaged, so none of its names can be decrypted: " + err.Error()})
			ivOK = false
		}
	}
	entries, err := list(dfd)
	if err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	for _, name := range entries {
		if crypt.IsReserved(name, atRoot) {
			continue
		}
		path := filepath.Join(lower, name)
		childPlain := ""
		if ivOK {
			p, err := decodeName(c.s, dfd, iv, name)
			if err != nil {
				kind := "name"
				if crypt.IsLongName(name) {
					kind = "sidecar"
				}
				c.problem(Problem{Lower: path, Plain: plain, Kind: kind, Detail: "name does not decrypt: " + err.Error()})
			} else if plain != "" {
				childPlain = filepath.Join(plain, p)
			}
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			c.problem(Problem{Lower: path, Plain: childPlain, Kind: "io", Detail: err.Error()})
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sub, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
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

func (c *checker) file(dfd int, name, lower, plain string) {
	c.r.Files++
	c.tick()
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	defer unix.Close(fd)
	c.xattrs(fd, lower, plain)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	size := uint64(st.Size)
	if size == 0 {
		return
	}
	if _, err := crypt.PlainSize(size); err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "size", Detail: "the file was truncated or extended inside a block: " + err.Error()})
	}
	if size < crypt.HeaderLen {
		return
	}
	hdr := make([]byte, crypt.HeaderLen)
	if _, err := unix.Pread(fd, hdr, 0); err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	id, err := crypt.ParseHeader(hdr)
	if err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "header", Detail: err.Error()})
		return
	}
	bad := 0
	for block := int64(0); crypt.BlockOffset(uint64(block)) < size; {
		off := int64(crypt.BlockOffset(uint64(block)))
		chunk := c.buf[:min(int64(len(c.buf)), int64(size)-off)]
		if err := preadFull(fd, chunk, off); err != nil {
			c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
			return
		}
		for i := 0; i < len(chunk); i += crypt.CipherBlockSize {
			stored := chunk[i:min(i+crypt.CipherBlockSize, len(chunk))]
			c.r.Blocks++
			if _, err := c.s.OpenBlock(c.plain[:0], stored, id, uint64(block)); err != nil {
				if bad < maxBlockProblems {
					b := block
					c.problem(Problem{Lower: lower, Plain: plain, Kind: "block", Block: &b,
						Detail: fmt.Sprintf("block %d (plaintext from byte %d) fails authentication: modified, moved or torn",
							block, block*crypt.BlockSize)})
				}
				bad++
			}
			block++
		}
	}
	if bad > maxBlockProblems {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "block",
			Detail: fmt.Sprintf("%d more bad blocks not listed", bad-maxBlockProblems)})
	}
}

func (c *checker) symlink(dfd int, name, lower, plain string) {
	buf := make([]byte, 8192)
	n, err := unix.Readlinkat(dfd, name, buf)
	if err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "io", Detail: err.Error()})
		return
	}
	if _, err := c.s.DecryptSymlink(string(buf[:n])); err != nil {
		c.problem(Problem{Lower: lower, Plain: plain, Kind: "symlink", Detail: "target does not decrypt: " + err.Error()})
	}
}

// xattrs checks the user attributes of the file behind fd.
func (c *checker) xattrs(fd int, lower, plain string) {
	path := "/proc/self/fd/" + strconv.Itoa(fd)
	sz, err := unix.Listxattr(path, nil)
	if err != nil || sz == 0 {
		return
	}
	buf := make([]byte, sz)
	if sz, err = unix.Listxattr(path, buf); err != nil {
		return
	}
	for _, lname := range strings.Split(string(buf[:sz]), "\x00") {
		if !strings.HasPrefix(lname, "user.") {
			continue
		}
		c.r.Xattrs++
		if _, err := c.s.DecryptXattrName(lname); err != nil {
			c.problem(Problem{Lower: lower, Plain: plain, Kind: "xattr", Detail: fmt.Sprintf("attribute name %q does not decrypt: %v", lname, err)})
			continue
		}
		vsz, err := unix.Getxattr(path, lname, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Getxattr(path, lname, v); err != nil {
			continue
		}
		if _, err := c.s.OpenXattrValue(lname, v[:vsz]); err != nil {
			c.problem(Problem{Lower: lower, Plain: plain, Kind: "xattr", Detail: fmt.Sprintf("value of attribute %q does not decrypt: %v", lname, err)})
		}
	}
}

func preadFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pread(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("unexpected end of file at %d", off)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func readIV(dfd int) (crypt.DirIV, error) {
	var iv crypt.DirIV
	fd, err := unix.Openat(dfd, crypt.DirIVFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return iv, err
	}
	defer unix.Close(fd)
	var b [crypt.DirIVLen + 1]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return iv, err
	}
	if n != crypt.DirIVLen {
		return iv, fmt.Errorf("%d bytes instead of %d", n, crypt.DirIVLen)
	}
	copy(iv[:], b[:])
	return iv, nil
}

func decodeName(s *crypt.Suite, dfd int, iv crypt.DirIV, name string) (string, error) {
	enc := name
	if crypt.IsLongName(name) {
		fd, err := unix.Openat(dfd, crypt.SidecarName(name), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("sidecar: %w", err)
		}
		b := make([]byte, 4096)
		n, err := unix.Read(fd, b)
		unix.Close(fd)
		if err != nil {
			return "", err
		}
		if enc, err = crypt.ParseSidecar(name, b[:n]); err != nil {
			return "", err
		}
	} else if strings.ContainsRune(name, '.') {
		return "", errors.New("not an encrypted name (a file added to the cipher tree from outside?)")
	}
	return s.DecryptName(iv, enc)
}

// list returns the names in a directory.
func list(dfd int) ([]string, error) {
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		for off := 0; off < n; {
			d := (*unix.Dirent)(unsafe.Pointer(&buf[off]))
			off += int(d.Reclen)
			b := (*[256]byte)(unsafe.Pointer(&d.Name[0]))
			l := 0
			for l < len(b) && b[l] != 0 {
				l++
			}
			if name := string(b[:l]); name != "." && name != ".." {
				names = append(names, name)
			}
		}
	}
}
