package filemode

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRealFiles: for a file of every type the machine lets a test make
// (and the special bits), FromUnix of its st_mode is what os.Lstat says
// (Go's own conversion).
func TestRealFiles(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("file"), nil, 0o640))
	must(os.WriteFile(p("suid"), nil, 0o755))
	must(os.Chmod(p("suid"), 0o755|os.ModeSetuid|os.ModeSetgid))
	must(os.Mkdir(p("dir"), 0o755))
	must(os.Mkdir(p("sticky"), 0o777))
	must(os.Chmod(p("sticky"), 0o777|os.ModeSticky))
	must(os.Symlink("file", p("link")))
	must(unix.Mkfifo(p("fifo"), 0o600))
	l, err := net.Listen("unix", p("sock"))
	must(err)
	defer l.Close()
	paths := []string{p("file"), p("suid"), p("dir"), p("sticky"), p("link"), p("fifo"), p("sock"), "/dev/null"}
	if os.Geteuid() == 0 {
		must(unix.Mknod(p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
		paths = append(paths, p("blk"))
	}
	for _, path := range paths {
		var st unix.Stat_t
		must(unix.Lstat(path, &st))
		fi, err := os.Lstat(path)
		must(err)
		if got := FromUnix(st.Mode); got != fi.Mode() {
			t.Errorf("%s: FromUnix(%o) = %v, os.Lstat says %v", path, st.Mode, got, fi.Mode())
		}
	}
}
