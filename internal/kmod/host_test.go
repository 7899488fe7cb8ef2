package kmod

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestProbeThisHost checks what Probe says about the machine the test runs
// on against evidence read here independently: uname, /proc/modules,
// /sys/module and a raw attach ioctl.
func TestProbeThisHost(t *testing.T) {
	if _, err := os.Stat("/sys/module"); err != nil {
		t.Skipf("no /sys/module: %v", err)
	}
	st := Probe()
	t.Logf("Probe: %+v", *st)
	t.Logf("Advice: %+v", st.Advice())

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	if release := unix.ByteSliceToString(uts.Release[:]); st.Kernel != release {
		t.Errorf("Kernel = %q, uname says %q", st.Kernel, release)
	}

	modules, modErr := os.ReadFile("/proc/modules")
	if st.Modules != (modErr == nil) {
		t.Errorf("Modules = %v, but reading /proc/modules gave %v", st.Modules, modErr)
	}
	listed := false
	for _, line := range strings.Split(string(modules), "\n") {
		listed = listed || strings.HasPrefix(line, "fuse ")
	}
	_, sysErr := os.Stat("/sys/module/fuse")
	switch {
	case listed && st.Form != FormModule:
		t.Errorf("/proc/modules lists fuse, Probe says %v", st.Form)
	case !listed && sysErr == nil && st.Form != FormBuiltin:
		t.Errorf("/sys/module/fuse exists and /proc/modules does not list fuse (built in), Probe says %v", st.Form)
	}

	// The hook, asked directly: FUSE_DEV_IOC_FASTPATH_ATTACH =
	// _IOW(229, 0x80, __s32) with -1 (detach).
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if st.Hook != HookUnknown {
			t.Errorf("/dev/fuse cannot be opened (%v), Probe says hook %v", err, st.Hook)
		}
		t.Skipf("cannot open /dev/fuse to check the hook: %v", err)
	}
	defer unix.Close(fd)
	arg := int32(-1)
	const attach = 1<<30 | 4<<16 | 229<<8 | 0x80
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), attach, uintptr(unsafe.Pointer(&arg)))
	wantHook := HookYes
	if errors.Is(errno, unix.ENOTTY) {
		wantHook = HookNo
	}
	if st.Hook != wantHook {
		t.Errorf("Hook = %v, the ioctl answered %v", st.Hook, errno)
	}
	if a := st.Advice(); a.Available != (wantHook == HookYes) {
		t.Errorf("Advice.Available = %v with hook %v: %s", a.Available, wantHook, a.Summary)
	}
	if st.Form == FormBuiltin && wantHook == HookNo && st.Advice().Command != "" {
		t.Errorf("built-in fuse without the hook, yet a command is offered: %q", st.Advice().Command)
	}
}
