package kmod

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/bpf/fastpath"
	"github.com/cryptfs/cryptfs/bpf/kernel"
)

// Form is how the running kernel has FUSE.
type Form int

const (
	FormUnknown  Form = iota
	FormBuiltin       // compiled into the kernel image: no module can replace it
	FormModule        // a loadable module, loaded now
	FormUnloaded      // a loadable module that is not loaded now
	FormAbsent        // neither built in nor available as a module
)

func (f Form) String() string {
	switch f {
	case FormBuiltin:
		return "built-in"
	case FormModule:
		return "loadable module, loaded"
	case FormUnloaded:
		return "loadable module, not loaded"
	case FormAbsent:
		return "absent"
	}
	return "unknown"
}

// MarshalText makes Form a string in JSON.
func (f Form) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// Hook is whether /dev/fuse answers the fast-path attach ioctl.
type Hook int

const (
	HookUnknown Hook = iota // the probe could not tell (see Status.HookErr)
	HookNo                  // ENOTTY: this fuse has no cryptfs hook
	HookYes                 // the ioctl is known
)

func (h Hook) String() string {
	switch h {
	case HookNo:
		return "no"
	case HookYes:
		return "yes"
	}
	return "unknown"
}

// MarshalText makes Hook a string in JSON.
func (h Hook) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// Status is what Probe found. Empty strings mean "not known".
type Status struct {
	Kernel  string `json:"kernel"`            // release (uname -r)
	Debian  string `json:"debian,omitempty"`  // Debian version of the running kernel, from /proc/version
	Distro  string `json:"distro,omitempty"`  // os-release ID and VERSION_ID, e.g. "debian 12"
	Modules bool   `json:"loadable_modules"`  // the kernel loads modules (/proc/modules exists)
	Form    Form   `json:"fuse"`              // how this kernel has fuse
	Version string `json:"version,omitempty"` // the loaded fuse's version (/sys/module/fuse/version)
	Taint   string `json:"taint,omitempty"`   // the loaded module's taint flags (O out of tree, E unsigned)
	Hook    Hook   `json:"hook"`              // /dev/fuse knows the attach ioctl
	// HookErr says why Hook is HookUnknown.
	HookErr string `json:"hook_error,omitempty"`
	// Modprobe is the fuse.ko `modprobe fuse` loads (from modules.dep,
	// relative to /lib/modules/KVER) and ModprobeVersion its version.
	Modprobe        string `json:"modprobe,omitempty"`
	ModprobeVersion string `json:"modprobe_version,omitempty"`
	SecureBoot      string `json:"secure_boot,omitempty"` // "on", "off", "no EFI"
	Lockdown        string `json:"lockdown,omitempty"`    // "none", "integrity", "confidentiality"
	// Want is the module version this cryptfs was built with.
	Want string `json:"want"`
}

// IsCryptfsVersion reports whether a module version is a cryptfs one.
func IsCryptfsVersion(v string) bool {
	return strings.HasPrefix(v, kernel.ModuleVersionPrefix)
}

// System is where Probe looks.
type System struct {
	// Root is prepended to every path read: "/" on a real system.
	Root string
	// ProbeHook tests /dev/fuse for the attach ioctl; nil leaves Hook
	// HookUnknown.
	ProbeHook func() (Hook, error)
}

// Probe reads the running system. It may load the fuse module: opening
// /dev/fuse does, as any FUSE mount would.
func Probe() *Status {
	return System{Root: "/", ProbeHook: ProbeDevFuse}.Probe()
}

// ProbeDevFuse opens /dev/fuse and asks it to detach a fast-path program
// from the (unmounted) descriptor: a fuse without the cryptfs hook answers
// ENOTTY; with it the request fails otherwise (not mounted, or EPERM
// without CAP_BPF/CAP_SYS_ADMIN), which still proves the hook.
func ProbeDevFuse() (Hook, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return HookUnknown, fmt.Errorf("open /dev/fuse: %w", err)
	}
	defer unix.Close(fd)
	if err := fastpath.Detach(fd); errors.Is(err, unix.ENOTTY) {
		return HookNo, nil
	}
	return HookYes, nil
}

// Probe reads what sys shows. The hook is probed first: opening /dev/fuse
// may load the module, and the rest should describe that state.
func (sys System) Probe() *Status {
	s := &Status{Want: kernel.ModuleVersion()}
	if sys.ProbeHook != nil {
		h, err := sys.ProbeHook()
		s.Hook = h
		if err != nil {
			s.HookErr = err.Error()
		}
	}
	s.Kernel = strings.TrimSpace(sys.read("proc/sys/kernel/osrelease"))
	s.Debian = debianVersion(sys.read("proc/version"))
	s.Distro = distro(sys.read("etc/os-release"), sys.read("usr/lib/os-release"))
	s.Modules = sys.exists("proc/modules")
	s.SecureBoot = sys.secureBoot()
	s.Lockdown = bracketed(sys.read("sys/kernel/security/lockdown"))

	modDir := path.Join("lib/modules", s.Kernel)
	if s.Kernel != "" {
		if p := fuseInDep(sys.read(path.Join(modDir, "modules.dep"))); p != "" {
			s.Modprobe = p
			full := p
			if !path.IsAbs(p) {
				full = path.Join(modDir, p)
			}
			s.ModprobeVersion, _ = moduleVersion(sys.path(full))
		}
	}

	switch {
	case sys.exists("sys/module/fuse/initstate"):
		s.Form = FormModule
	case sys.exists("sys/module/fuse"):
		// Built-in modules with parameters (fuse has some) get a
		// /sys/module directory without initstate.
		s.Form = FormBuiltin
	case hasFilesystem(sys.read("proc/filesystems"), "fuse"),
		s.Kernel != "" && listsFuse(sys.read(path.Join(modDir, "modules.builtin"))):
		s.Form = FormBuiltin
	case s.Modprobe != "":
		s.Form = FormUnloaded
	case sys.exists("proc/filesystems"):
		s.Form = FormAbsent
	}
	if s.Form == FormModule || s.Form == FormBuiltin {
		s.Version = strings.TrimSpace(sys.read("sys/module/fuse/version"))
	}
	if s.Form == FormModule {
		s.Taint = strings.TrimSpace(sys.read("sys/module/fuse/taint"))
	}
	return s
}

func (sys System) path(p string) string {
	return filepath.Join(sys.Root, filepath.FromSlash(p))
}

// read returns a small file's content, "" if it cannot be read.
func (sys System) read(p string) string {
	f, err := os.Open(sys.path(p))
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	return string(b)
}

func (sys System) exists(p string) bool {
	_, err := os.Stat(sys.path(p))
	return err == nil
}

// secureBootVar is the EFI global variable that says whether Secure Boot
// is enforced: 4 bytes of attributes, then 1 for on.
const secureBootVar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

func (sys System) secureBoot() string {
	if !sys.exists("sys/firmware/efi") {
		return "no EFI"
	}
	b := sys.read(secureBootVar)
	switch {
	case len(b) == 5 && b[4] == 1:
		return "on"
	case len(b) == 5:
		return "off"
	case b == "" && sys.exists("sys/firmware/efi/efivars"):
		return "off" // no variable: firmware without Secure Boot
	}
	return ""
}

var debianRE = regexp.MustCompile(`\bDebian (\S+)`)

// debianVersion extracts the Debian package version from /proc/version
// ("... (gcc-12 (Debian 12.2.0-14) 12.2.0, ...) #1 SMP PREEMPT_DYNAMIC
// Debian 6.1.192-3 (2026-11-26)"): the last "Debian X", since the
// compiler's version comes first.
func debianVersion(procVersion string) string {
	m := debianRE.FindAllStringSubmatch(procVersion, -1)
	if m == nil {
		return ""
	}
	return m[len(m)-1][1]
}

// distro returns "ID VERSION_ID" from the first os-release text given.
func distro(texts ...string) string {
	for _, t := range texts {
		if t == "" {
			continue
		}
		var id, ver string
		sc := bufio.NewScanner(strings.NewReader(t))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"'`)
			switch k {
			case "ID":
				id = v
			case "VERSION_ID":
				ver = v
			}
		}
		return strings.TrimSpace(id + " " + ver)
	}
	return ""
}

// bracketed returns the selected word of a sysfs choice list
// ("none [integrity] confidentiality").
func bracketed(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']' {
			return w[1 : len(w)-1]
		}
	}
	return ""
}

func hasFilesystem(procFilesystems, name string) bool {
	for _, line := range strings.Split(procFilesystems, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

// isFuseKo reports whether a module path names fuse.ko, compressed or not.
func isFuseKo(p string) bool {
	switch path.Base(p) {
	case "fuse.ko", "fuse.ko.xz", "fuse.ko.zst", "fuse.ko.gz":
		return true
	}
	return false
}

// listsFuse reports whether a modules.builtin text lists fuse.ko.
func listsFuse(modulesBuiltin string) bool {
	for _, line := range strings.Split(modulesBuiltin, "\n") {
		if isFuseKo(strings.TrimSpace(line)) {
			return true
		}
	}
	return false
}

// fuseInDep returns the fuse.ko path modules.dep gives ("path: deps"
// lines; depmod writes one line per module name, the one modprobe loads,
// updates/ before the kernel's own).
func fuseInDep(modulesDep string) string {
	for _, line := range strings.Split(modulesDep, "\n") {
		p, _, ok := strings.Cut(line, ":")
		if ok && isFuseKo(p) {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

// moduleVersion returns the version field of a module file's .modinfo.
func moduleVersion(file string) (string, error) {
	info, err := modinfo(file)
	if err != nil {
		return "", err
	}
	return info["version"], nil
}

// modinfo reads the .modinfo section of a kernel module (.ko or .ko.gz;
// .xz and .zst need tools Go lacks and are reported as unreadable).
func modinfo(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(file, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if data, err = io.ReadAll(io.LimitReader(zr, 256<<20)); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	case strings.HasSuffix(file, ".xz"), strings.HasSuffix(file, ".zst"):
		return nil, fmt.Errorf("%s: compressed module, not read", file)
	}
	info, err := parseModinfo(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return info, nil
}

// parseModinfo parses a module's ELF image and returns its .modinfo
// fields (NUL-separated key=value strings; the first of a repeated key
// wins).
func parseModinfo(image []byte) (map[string]string, error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > uint64(len(image)) {
		return nil, errors.New("bad .modinfo section")
	}
	raw, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	info := make(map[string]string)
	for _, field := range bytes.Split(raw, []byte{0}) {
		k, v, ok := strings.Cut(string(field), "=")
		if !ok || k == "" {
			continue
		}
		if _, dup := info[k]; !dup {
			info[k] = v
		}
	}
	return info, nil
}
