package harden

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// NoSignals runs f on the calling goroutine's OS thread, locked to it,
// with every signal that can be blocked blocked, and restores the
// thread's signal mask afterwards.
//
// Why: when a signal reaches a thread, the kernel saves the thread's
// registers, vector registers included, in a frame on the thread's
// signal stack, and nobody clears that frame after the handler returns.
// The Go runtime signals its threads all the time (SIGURG preempts
// goroutines, for the scheduler and the garbage collector), so a key that
// sits in registers while it is copied or hashed is, now and then, left
// behind in the signal stack of some thread until the next signal there
// overwrites it: memory outside the keyring. Measured in a reverse
// daemon (e2e TestDaemonKeysInMemory): a subkey whole, in XMM0 and XMM1
// of a signal frame, after the 32-byte copy blake2b.New makes of its
// key; 2 runs in 100. With signals blocked none is delivered to the
// thread while f runs; the ones that arrive meanwhile are delivered when
// the mask is restored, when f's registers no longer hold its keys (f
// must end with other work in its registers, as a hash's last
// compression leaves them).
//
// Synchronous faults (SIGSEGV in f) cannot be blocked and still crash as
// they would. Cost: two rt_sigprocmask system calls, about 3 µs together
// on the project's test machine (a PVM guest, where system calls are
// dear; crypt's BenchmarkEncryptName with and without it).
func NoSignals(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
		f() // not expected on Linux; f still runs, only unshielded
		return
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	f()
}
