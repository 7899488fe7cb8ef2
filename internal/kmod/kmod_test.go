package kmod

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/bpf/kernel"
)

// fakeModule returns a minimal ELF64 relocatable with a .modinfo section
// holding fields (each "key=value"), as a kernel module carries them.
func fakeModule(fields ...string) []byte {
	var modinfo []byte
	for _, f := range fields {
		modinfo = append(modinfo, f...)
		modinfo = append(modinfo, 0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(len(modinfo))
	shOff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shOff)
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(3)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.Write(modinfo)
	b.Write(shstrtab)
	b.Write(make([]byte, int(shOff)-b.Len()))
	section := func(name, typ uint32, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(2)) // SHF_ALLOC
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	b.Write(make([]byte, shentsize))                // the null section
	section(1, 1, modinfoOff, uint64(len(modinfo))) // .modinfo, PROGBITS
	section(10, 3, shstrOff, uint64(len(shstrtab))) // .shstrtab, STRTAB
	return b.Bytes()
}

const (
	debianKernel = "6.1.0-57-amd64"
	debianProc   = "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)\n"
	osRelease    = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
	stockDep     = "kernel/fs/fuse/fuse.ko:\nkernel/fs/fuse/cuse.ko: kernel/fs/fuse/fuse.ko\n"
	ourDep       = "updates/dkms/fuse.ko:\nupdates/dkms/cuse.ko: updates/dkms/fuse.ko\n"
	modDir       = "lib/modules/" + debianKernel + "/"
)

// debianBase is a Debian 12 machine running the stock kernel, fuse loaded.
func debianBase() map[string]string {
	return map[string]string{
		"proc/sys/kernel/osrelease":         debianKernel + "\n",
		"proc/version":                      debianProc,
		"proc/modules":                      "fuse 180224 3 - Live 0x0000000000000000\n",
		"proc/filesystems":                  "nodev\tsysfs\nnodev\tfuse\n\tfuseblk\nnodev\tfusectl\n",
		"etc/os-release":                    osRelease,
		"sys/module/fuse/initstate":         "live\n",
		"sys/module/fuse/taint":             "\n",
		"sys/firmware/efi/efivars/.present": "",
		"sys/kernel/security/lockdown":      "[none] integrity confidentiality\n",
		modDir + "modules.dep":              stockDep,
		modDir + "modules.builtin":          "kernel/fs/ext4/ext4.ko\n",
		modDir + "kernel/fs/fuse/fuse.ko":   string(fakeModule("alias=fs-fuse", "license=GPL", "name=fuse")),
	}
}

func with(base map[string]string, changes map[string]string) map[string]string {
	m := make(map[string]string, len(base)+len(changes))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range changes {
		if v == "<delete>" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func hookIs(h Hook, err error) func() (Hook, error) {
	return func() (Hook, error) { return h, err }
}

func TestProbe(t *testing.T) {
	want := kernel.ModuleVersion()
	ours := string(fakeModule("version="+want, "name=fuse", "cryptfs_patch=abc"))
	secureBootOn := string([]byte{6, 0, 0, 0, 1})

	tests := []struct {
		name  string
		files map[string]string
		hook  func() (Hook, error)

		form      Form
		version   string
		modprobe  string
		mpVersion string
		available bool
		summary   string // substring of the advice summary
		command   string // substring of the command; "" = no command
		note      string // substring of one note
		why       string // substring of Why(); "" = Why() must be ""
		describe  string // Describe(), if set
	}{{
		name:     "debian stock module loaded, nothing installed",
		files:    debianBase(),
		hook:     hookIs(HookNo, nil),
		form:     FormModule,
		modprobe: "kernel/fs/fuse/fuse.ko",
		summary:  "not installed",
		why:      "this kernel's fuse module has no cryptfs hook; run 'cryptfs kmod install' (Debian 12",
		describe: "loadable module, loaded, no version (not the cryptfs module), cryptfs hook: no",
		command:  "apt-get install dkms linux-headers-6.1.0-57-amd64 linux-source-6.1=6.1.192-3 && cryptfs kmod install && modprobe -r fuse && modprobe fuse",
		note:     "unmount them first",
	}, {
		name: "debian, ours installed by dkms, stock still loaded",
		files: with(debianBase(), map[string]string{
			modDir + "modules.dep":          ourDep,
			modDir + "updates/dkms/fuse.ko": ours,
		}),
		hook:      hookIs(HookNo, nil),
		form:      FormModule,
		modprobe:  "updates/dkms/fuse.ko",
		mpVersion: want,
		summary:   "installed, not loaded",
		why:       "the cryptfs fuse module " + want + " is installed but not loaded; with no FUSE file system mounted, run 'modprobe -r fuse && modprobe fuse'",
		command:   "modprobe -r fuse && modprobe fuse",
	}, {
		name: "debian, ours installed, fuse not loaded",
		files: with(debianBase(), map[string]string{
			modDir + "modules.dep":          ourDep,
			modDir + "updates/dkms/fuse.ko": ours,
			"sys/module/fuse/initstate":     "<delete>",
			"sys/module/fuse/taint":         "<delete>",
			"proc/filesystems":              "nodev\tsysfs\n",
		}),
		hook:      hookIs(HookUnknown, errors.New("open /dev/fuse: permission denied")),
		form:      FormUnloaded,
		modprobe:  "updates/dkms/fuse.ko",
		mpVersion: want,
		summary:   "installed, not loaded",
		why:       "/dev/fuse could not be probed for the cryptfs hook (open /dev/fuse: permission denied)",
		command:   "modprobe fuse",
	}, {
		name: "debian, ours loaded",
		files: with(debianBase(), map[string]string{
			modDir + "modules.dep":          ourDep,
			modDir + "updates/dkms/fuse.ko": ours,
			"sys/module/fuse/version":       want + "\n",
			"sys/module/fuse/taint":         "OE\n",
		}),
		hook:      hookIs(HookYes, nil),
		form:      FormModule,
		version:   want,
		modprobe:  "updates/dkms/fuse.ko",
		mpVersion: want,
		available: true,
		summary:   "available",
		why:       "",
		describe:  "loadable module, loaded, " + want + ", cryptfs hook: yes",
	}, {
		name: "debian, an older cryptfs module loaded",
		files: with(debianBase(), map[string]string{
			"sys/module/fuse/version": "cryptfs-000000000000\n",
		}),
		hook:      hookIs(HookYes, nil),
		form:      FormModule,
		version:   "cryptfs-000000000000",
		modprobe:  "kernel/fs/fuse/fuse.ko",
		available: true,
		summary:   "available",
		why:       "",
		note:      "this cryptfs was built with " + want,
	}, {
		name: "ours loaded but /dev/fuse not openable (not root)",
		files: with(debianBase(), map[string]string{
			"sys/module/fuse/version": want + "\n",
		}),
		hook:     hookIs(HookUnknown, errors.New("open /dev/fuse: permission denied")),
		form:     FormModule,
		version:  want,
		modprobe: "kernel/fs/fuse/fuse.ko",
		summary:  "probably available",
		why:      "the loaded fuse is the cryptfs module " + want + ", but /dev/fuse could not be probed",
	}, {
		name: "built-in fuse, no module support (like this development host)",
		files: with(debianBase(), map[string]string{
			"proc/sys/kernel/osrelease":                 "6.18.44-fc-v1272\n",
			"proc/version":                              "Linux version 6.18.44-fc-v1272 (gcc 12) #1 SMP PREEMPT_DYNAMIC\n",
			"proc/modules":                              "<delete>",
			"sys/module/fuse/initstate":                 "<delete>",
			"sys/module/fuse/taint":                     "<delete>",
			"sys/module/fuse/parameters/max_user_bgreq": "1179\n",
		}),
		hook:     hookIs(HookNo, nil),
		form:     FormBuiltin,
		summary:  "fuse is built into this kernel",
		why:      "this kernel's fuse is built in without the cryptfs hook",
		describe: "built-in, no version (not the cryptfs module), cryptfs hook: no",
	}, {
		name: "patched kernel with fuse built in",
		files: with(debianBase(), map[string]string{
			"proc/sys/kernel/osrelease":                 "6.1.192-cryptfs\n",
			"sys/module/fuse/initstate":                 "<delete>",
			"sys/module/fuse/taint":                     "<delete>",
			"sys/module/fuse/parameters/max_user_bgreq": "1179\n",
		}),
		hook:      hookIs(HookYes, nil),
		form:      FormBuiltin,
		available: true,
		summary:   "available",
		why:       "",
	}, {
		name: "fuse only in modules.builtin",
		files: with(debianBase(), map[string]string{
			"sys/module/fuse/initstate": "<delete>",
			"sys/module/fuse/taint":     "<delete>",
			"proc/filesystems":          "nodev\tsysfs\n",
			modDir + "modules.builtin":  "kernel/fs/fuse/fuse.ko\n",
			modDir + "modules.dep":      "",
		}),
		hook:    hookIs(HookNo, nil),
		form:    FormBuiltin,
		summary: "built into this kernel",
		why:     "built in without the cryptfs hook",
	}, {
		name: "another distribution's kernel with fuse as a module",
		files: with(debianBase(), map[string]string{
			"proc/sys/kernel/osrelease":                "6.8.0-45-generic\n",
			"proc/version":                             "Linux version 6.8.0-45-generic (buildd@lcy02) #45-Ubuntu SMP\n",
			"etc/os-release":                           "ID=ubuntu\nVERSION_ID=\"24.04\"\n",
			"lib/modules/6.8.0-45-generic/modules.dep": "kernel/fs/fuse/fuse.ko.zst:\n",
		}),
		hook:     hookIs(HookNo, nil),
		form:     FormModule,
		modprobe: "kernel/fs/fuse/fuse.ko.zst",
		summary:  "made for Debian 12's 6.1 amd64 kernels only (this is ubuntu 24.04",
		why:      "the cryptfs module is made for Debian 12's 6.1 amd64 kernels only (this is ubuntu 24.04, kernel 6.8.0-45-generic)",
	}, {
		name: "debian backports kernel",
		files: with(debianBase(), map[string]string{
			"proc/sys/kernel/osrelease":                 "6.12.12+bpo-amd64\n",
			"proc/version":                              "Linux version 6.12.12+bpo-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.12.12-1~bpo12+1\n",
			"lib/modules/6.12.12+bpo-amd64/modules.dep": stockDep,
		}),
		hook:     hookIs(HookNo, nil),
		form:     FormModule,
		modprobe: "kernel/fs/fuse/fuse.ko",
		summary:  "made for Debian 12's 6.1 amd64 kernels only",
		why:      "made for Debian 12's 6.1 amd64 kernels only (this is debian 12, kernel 6.12.12+bpo-amd64)",
	}, {
		name: "debian stock with Secure Boot on",
		files: with(debianBase(), map[string]string{
			secureBootVar:                  secureBootOn,
			"sys/kernel/security/lockdown": "none [integrity] confidentiality\n",
		}),
		hook:     hookIs(HookNo, nil),
		form:     FormModule,
		modprobe: "kernel/fs/fuse/fuse.ko",
		summary:  "not installed",
		why:      "run 'cryptfs kmod install'",
		command:  "cryptfs kmod install",
		note:     "mokutil --import /var/lib/dkms/mok.pub",
	}, {
		name: "no fuse at all",
		files: with(debianBase(), map[string]string{
			"sys/module/fuse/initstate": "<delete>",
			"sys/module/fuse/taint":     "<delete>",
			"proc/filesystems":          "nodev\tsysfs\n",
			modDir + "modules.dep":      "kernel/fs/ext4/ext4.ko:\n",
		}),
		hook:    hookIs(HookUnknown, errors.New("open /dev/fuse: no such file or directory")),
		form:    FormAbsent,
		summary: "no fuse at all",
		why:     "/dev/fuse could not be probed for the cryptfs hook (open /dev/fuse: no such file or directory)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			st := System{Root: root, ProbeHook: tt.hook}.Probe()
			if st.Form != tt.form {
				t.Errorf("Form = %v, want %v", st.Form, tt.form)
			}
			if st.Version != tt.version {
				t.Errorf("Version = %q, want %q", st.Version, tt.version)
			}
			if st.Modprobe != tt.modprobe {
				t.Errorf("Modprobe = %q, want %q", st.Modprobe, tt.modprobe)
			}
			if st.ModprobeVersion != tt.mpVersion {
				t.Errorf("ModprobeVersion = %q, want %q", st.ModprobeVersion, tt.mpVersion)
			}
			if st.Want != want {
				t.Errorf("Want = %q, want %q", st.Want, want)
			}
			a := st.Advice()
			if a.Available != tt.available {
				t.Errorf("Available = %v, want %v (%s)", a.Available, tt.available, a.Summary)
			}
			if !strings.Contains(a.Summary, tt.summary) {
				t.Errorf("Summary = %q, want it to contain %q", a.Summary, tt.summary)
			}
			if tt.command == "" && a.Command != "" {
				t.Errorf("Command = %q, want none", a.Command)
			}
			if !strings.Contains(a.Command, tt.command) {
				t.Errorf("Command = %q, want it to contain %q", a.Command, tt.command)
			}
			if tt.note != "" && !strings.Contains(strings.Join(a.Notes, "\n"), tt.note) {
				t.Errorf("Notes = %q, want one containing %q", a.Notes, tt.note)
			}
			// Why is the short form of the advice: empty exactly when
			// the tier is available, and naming the command when the
			// advice has one.
			why := st.Why()
			if (why == "") != (tt.why == "") || !strings.Contains(why, tt.why) {
				t.Errorf("Why() = %q, want %q", why, tt.why)
			}
			if (why == "") != a.Available && !strings.HasPrefix(a.Summary, "probably") {
				t.Errorf("Why() = %q with Advice.Available %v", why, a.Available)
			}
			if tt.describe != "" && st.Describe() != tt.describe {
				t.Errorf("Describe() = %q, want %q", st.Describe(), tt.describe)
			}
		})
	}
}

func TestProbeReadsDebianFacts(t *testing.T) {
	root := writeTree(t, with(debianBase(), map[string]string{
		secureBootVar:                  string([]byte{6, 0, 0, 0, 0}),
		"sys/kernel/security/lockdown": "none integrity [confidentiality]\n",
		"sys/module/fuse/taint":        "OE\n",
	}))
	st := System{Root: root}.Probe()
	for _, c := range []struct{ name, got, want string }{
		{"Kernel", st.Kernel, debianKernel},
		{"Debian", st.Debian, "6.1.192-3"},
		{"Distro", st.Distro, "debian 12"},
		{"SecureBoot", st.SecureBoot, "off"},
		{"Lockdown", st.Lockdown, "confidentiality"},
		{"Taint", st.Taint, "OE"},
		{"Hook", st.Hook.String(), "unknown"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !st.Modules {
		t.Error("Modules = false with /proc/modules present")
	}
	if !st.SupportedKernel() {
		t.Error("SupportedKernel = false for Debian's 6.1.0-57-amd64")
	}
}

func TestSecureBoot(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no EFI", map[string]string{"sys/kernel/x": ""}, "no EFI"},
		{"EFI without the variable", map[string]string{"sys/firmware/efi/efivars/Boot0000-x": ""}, "off"},
		{"on", map[string]string{secureBootVar: "\x06\x00\x00\x00\x01"}, "on"},
		{"off", map[string]string{secureBootVar: "\x06\x00\x00\x00\x00"}, "off"},
		{"unreadable size", map[string]string{secureBootVar: "\x06"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (System{Root: writeTree(t, tt.files)}).secureBoot(); got != tt.want {
				t.Errorf("secureBoot = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseModinfo(t *testing.T) {
	info, err := parseModinfo(fakeModule("version=cryptfs-123", "alias=a", "alias=b", "junk", "=x", "name=fuse"))
	if err != nil {
		t.Fatal(err)
	}
	if info["version"] != "cryptfs-123" || info["alias"] != "a" || info["name"] != "fuse" || len(info) != 3 {
		t.Errorf("parseModinfo = %v", info)
	}
	if _, err := parseModinfo([]byte("not an elf")); err == nil {
		t.Error("parseModinfo accepted a non-ELF")
	}
}

func TestModinfoGzip(t *testing.T) {
	dir := t.TempDir()
	var z bytes.Buffer
	zw := gzipWriter(&z)
	zw.Write(fakeModule("version=cryptfs-abc"))
	zw.Close()
	p := filepath.Join(dir, "fuse.ko.gz")
	if err := os.WriteFile(p, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := moduleVersion(p); err != nil || v != "cryptfs-abc" {
		t.Errorf("moduleVersion(.gz) = %q, %v", v, err)
	}
	xz := filepath.Join(dir, "fuse.ko.xz")
	os.WriteFile(xz, []byte("x"), 0o644)
	if _, err := moduleVersion(xz); err == nil {
		t.Error("moduleVersion(.xz) did not report the compressed module")
	}
}

func TestParsers(t *testing.T) {
	if got := bracketed("none [integrity] confidentiality"); got != "integrity" {
		t.Errorf("bracketed = %q", got)
	}
	if got := bracketed("none integrity"); got != "" {
		t.Errorf("bracketed without a choice = %q", got)
	}
	if got := debianVersion("Linux version 6.18.44 #1 SMP"); got != "" {
		t.Errorf("debianVersion of a non-Debian kernel = %q", got)
	}
	if got := fuseInDep("kernel/fs/fuse/cuse.ko: kernel/fs/fuse/fuse.ko\nkernel/fs/fuse/fuse.ko:\n"); got != "kernel/fs/fuse/fuse.ko" {
		t.Errorf("fuseInDep = %q (a dependency list is not the module's own line)", got)
	}
	if got := distro("", "ID=arch\n"); got != "arch" {
		t.Errorf("distro fallback = %q", got)
	}
}

func FuzzParseModinfo(f *testing.F) {
	f.Add(fakeModule("version=cryptfs-123", "name=fuse"))
	f.Add(fakeModule())
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseModinfo(b)
		if err == nil && info == nil {
			t.Fatal("nil map without an error")
		}
	})
}

func gzipWriter(w *bytes.Buffer) *gzip.Writer { return gzip.NewWriter(w) }
