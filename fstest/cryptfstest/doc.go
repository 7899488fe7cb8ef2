// Package cryptfstest drives the real cryptfs binary for the tests and
// tools that need a mount: the end-to-end tests (fstest/e2e), the vmtest
// workloads (vmtest/workload, a static binary that is not a test) and the
// benchmarks (bench). It is the one place that knows how to start, watch
// and stop a cryptfs daemon from the outside.
//
// # Two layers
//
// The core returns errors and takes a context, so programs that are not
// `go test` can use it:
//
//	cli := &cryptfstest.CLI{Bin: "/bin/cryptfs"}
//	if _, err := cli.Init(ctx, cipher); err != nil { ... }
//	m, err := cli.Mount(ctx, cryptfstest.MountOptions{Cipher: cipher, Dir: mnt, FastPath: "ebpf"})
//	st, err := m.Stats(ctx)
//	err = m.Unmount(ctx)
//
// The testing layer wraps it for tests: every failure is t.Fatal, every
// mount is torn down in t.Cleanup even when the test fails, and tests that
// cannot mount skip with the reason:
//
//	m := cryptfstest.NewMount(t, cryptfstest.MountOptions{Args: []string{"--fast-path=off"}})
//	...
//	cryptfstest.Unmount(t, m)
//
// # Promises
//
// Every daemon runs in a process of its own: a Go process must never open
// files on a FUSE mount it serves itself (the Go poller's FUSE_POLL
// deadlocks it). Mount returns once the mount answers: a foreground
// daemon (`cryptfs mount -f`, the default) has sent READY=1 to the
// NOTIFY_SOCKET the harness listens on, as it would to systemd; a
// background mount (`cryptfs mount`) has returned, which it does once the
// mount answers. Close, Abort and the testing layer's cleanup leave no
// mount, no daemon and no process in D state behind: a daemon that does
// not exit is killed after its FUSE connection is aborted through fusectl
// (see internal/mountinfo), and whatever is still mounted is detached.
// The harness aborts or unmounts only what it finds mounted at the
// mount's own directory at that moment, never by a device number it
// remembered (which the kernel may have given to another file system), and
// never the FUSE mount that was there before it mounted (a failed second
// mount on one directory leaves the first alone).
//
// # Other users
//
// CLI.Cred runs every command, and the daemons they start, as another
// user, with CLI.Env added to the environment (for example
// XDG_RUNTIME_DIR, where an unprivileged daemon keeps its control socket).
// That user must be able to execute the binary (the binary Binary builds
// lives in a directory of mode 0755) and to reach the cipher directory and
// the mountpoint, which the caller provides.
package cryptfstest
