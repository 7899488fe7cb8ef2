package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoadRefusesSpecialFiles: a FIFO, device node, socket or directory
// in place of cryptfs.conf is refused at once as corrupt, never opened
// (a FIFO would block the mount forever, waiting for a writer).
func TestLoadRefusesSpecialFiles(t *testing.T) {
	kinds := []struct {
		name string
		root bool
		make func(path string) error
	}{
		{"fifo", false, func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"socket", false, func(p string) error { return unix.Mknod(p, unix.S_IFSOCK|0o644, 0) }},
		{"directory", false, func(p string) error { return os.Mkdir(p, 0o700) }},
		{"chardev", true, func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) }},
		{"symlink to a fifo", false, func(p string) error {
			fifo := p + ".fifo"
			if err := unix.Mkfifo(fifo, 0o644); err != nil {
				return err
			}
			return os.Symlink(fifo, p)
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			if k.root && os.Geteuid() != 0 {
				t.Skip("skipping: device nodes need root")
			}
			path := filepath.Join(t.TempDir(), FileName)
			if err := k.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := Load(path, LoadOptions{})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("Load: %v, want ErrCorrupt", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked for 10 s")
			}
		})
	}
}
