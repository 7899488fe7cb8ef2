package reqstats

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
	"github.com/jacobsa/fuse"
	"github.com/jacobsa/fuse/fuseops"
	"github.com/jacobsa/fuse/fuseutil"
	"golang.org/x/sys/unix"
)

// envServeFS makes the test binary serve a tiny FUSE file system at the
// directory it names instead of running tests. Tests start it as a child
// process: a Go process must never open files on a FUSE mount it serves
// itself (the poller deadlocks).
const envServeFS = "REQSTATS_TEST_SERVE_FS"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envServeFS); dir != "" {
		if err := serveTestFS(dir); err != nil {
			fmt.Fprintln(os.Stderr, "test fs:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testFS is a root directory holding one empty file "file"; every other
// name is ENOENT. Nothing is cached: entries and attributes have zero
// validity, so each stat reaches the daemon.
type testFS struct {
	fuseutil.NotImplementedFileSystem
}

func (*testFS) attrs(ino fuseops.InodeID) (fuseops.InodeAttributes, bool) {
	now := time.Now()
	switch ino {
	case fuseops.RootInodeID:
		return fuseops.InodeAttributes{Nlink: 2, Mode: os.ModeDir | 0o755, Atime: now, Mtime: now, Ctime: now}, true
	case 2:
		return fuseops.InodeAttributes{Nlink: 1, Mode: 0o644, Atime: now, Mtime: now, Ctime: now}, true
	}
	return fuseops.InodeAttributes{}, false
}

func (fs *testFS) LookUpInode(_ context.Context, op *fuseops.LookUpInodeOp) error {
	if op.Parent != fuseops.RootInodeID || op.Name != "file" {
		return fuse.ENOENT
	}
	op.Entry.Child = 2
	op.Entry.Attributes, _ = fs.attrs(2)
	return nil
}

func (fs *testFS) GetInodeAttributes(_ context.Context, op *fuseops.GetInodeAttributesOp) error {
	a, ok := fs.attrs(op.Inode)
	if !ok {
		return fuse.ENOENT
	}
	op.Attributes = a
	return nil
}

func (*testFS) ForgetInode(context.Context, *fuseops.ForgetInodeOp) error { return nil }

// serveTestFS mounts testFS at dir, prints "ready" and serves until the
// mount goes away or SIGTERM arrives.
func serveTestFS(dir string) error {
	mfs, err := fuse.Mount(dir, fuseutil.NewFileSystemServer(&testFS{}), &fuse.MountConfig{
		FSName:  "reqstatstest",
		Subtype: "reqstatstest",
	})
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}()
	fmt.Println("ready")
	return mfs.Join(context.Background())
}

// mountTestFS starts a child process serving testFS on a fresh directory
// and returns the mount point. Cleanup unmounts it (aborting the connection
// if needed) and reaps the child, also when the test fails.
func mountTestFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE and loading BPF need root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envServeFS+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start test fs: %v", err)
	}
	exited := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		for sc.Scan() {
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { unmountTestFS(t, dir, cmd, exited) })

	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("test fs exited before it was ready")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("test fs not ready after 30s")
	}
	return dir
}

func unmountTestFS(t *testing.T, dir string, cmd *exec.Cmd, exited <-chan error) {
	if dev, err := mountinfo.FUSEDevice(dir); err == nil {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Logf("unmount %s: %v; aborting the connection", dir, err)
			abortConnection(t, dev)
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("lazy unmount %s: %v", dir, err)
			}
		}
	}
	select {
	case <-exited:
		return
	case <-time.After(10 * time.Second):
	}
	t.Errorf("test fs did not exit after unmount; killing it")
	if dev, err := mountinfo.FUSEDevice(dir); err == nil {
		abortConnection(t, dev)
	}
	_ = cmd.Process.Kill()
	<-exited
}

// abortConnection aborts FUSE connection dev through fusectl, so that
// nothing stays blocked on a daemon that no longer answers.
func abortConnection(t *testing.T, dev uint32) {
	const ctl = "/sys/fs/fuse/connections"
	abort := filepath.Join(ctl, strconv.FormatUint(uint64(dev), 10), "abort")
	if _, err := os.Stat(abort); err != nil {
		if err := unix.Mount("none", ctl, "fusectl", 0, ""); err != nil && err != unix.EBUSY {
			t.Logf("mount fusectl: %v", err)
		}
	}
	if err := os.WriteFile(abort, []byte("1"), 0); err != nil {
		t.Logf("abort connection %d: %v", dev, err)
	}
}
