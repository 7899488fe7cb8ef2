//go:build linux

package uring

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A read of a pipe through the ring completes once the pipe has data, with
// the user data and byte count the kernel reports.
func TestReadPipe(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	r, err := New(4, 8, SetupSingleIssuer|SetupDeferTaskrun|SetupSubmitAll)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	buf := make([]byte, 16)
	sqe := r.GetSQE()
	sqe.Opcode = OpRead
	sqe.Fd = int32(p[0])
	sqe.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	sqe.Len = uint32(len(buf))
	sqe.UserData = 42
	if err := r.Enter(0); err != nil {
		t.Fatalf("Enter: %v", err)
	}
	if r.PeekCQE() != nil {
		t.Fatal("read of an empty pipe completed")
	}
	if _, err := unix.Write(p[1], []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for {
		if err := r.Enter(1); err != unix.EINTR {
			if err != nil {
				t.Fatalf("Enter: %v", err)
			}
			break
		}
	}
	cqe := r.PeekCQE()
	if cqe == nil {
		t.Fatal("no completion after waiting for one")
	}
	if cqe.UserData != 42 || cqe.Res != 5 || string(buf[:5]) != "hello" {
		t.Fatalf("completion %+v, buffer %q; want user data 42, 5 bytes, hello", *cqe, buf[:5])
	}
	runtime.KeepAlive(buf)
	r.SeenCQE()
	if r.PeekCQE() != nil {
		t.Fatal("a second completion appeared")
	}
}

// The submission queue refuses more SQEs than it has room for.
func TestSQFull(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(2, 4, 0)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	for i := range 2 {
		if r.GetSQE() == nil {
			t.Fatalf("a ring of 2 refused SQE %d", i)
		}
	}
	if r.GetSQE() != nil {
		t.Fatal("a ring of 2 handed out a third SQE")
	}
	if r.Pending() != 2 {
		t.Fatalf("Pending = %d, want 2", r.Pending())
	}
}
