package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cryptfs/cryptfs/bpf/kernel"
	"github.com/cryptfs/cryptfs/internal/kmod"
)

func newKmod(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "kmod",
		Short: "The kernel side of the ebpf tier: is the cryptfs fuse hook here, and how to get it",
	}
	c.AddCommand(newKmodStatus(e), newKmodInstall(e))
	return c
}

func newKmodStatus(e env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Tell whether fuse is built in or a module, whether it has the cryptfs hook, and the command that gets it",
		Long: `Tell whether the running kernel's fuse is built in or a loadable module,
whether it has the cryptfs fast-path hook (/dev/fuse answers the attach
ioctl) and which version, which fuse.ko modprobe would load, and what gets
the ebpf tier on this kernel. Root sees more: /dev/fuse is often root-only.`,
		Args: args(0),
		RunE: func(c *cobra.Command, a []string) error {
			st := kmod.Probe()
			adv := st.Advice()
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*kmod.Status
					Advice kmod.Advice `json:"advice"`
				}{st, adv})
			}
			printKmodStatus(e.stdout, st, adv)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printKmodStatus(w io.Writer, st *kmod.Status, adv kmod.Advice) {
	kernelLine := st.Kernel
	if st.Debian != "" {
		kernelLine += " (Debian " + st.Debian + ")"
	}
	if st.Distro != "" {
		kernelLine += ", " + st.Distro
	}
	fmt.Fprintf(w, "Kernel:       %s\n", kernelLine)
	fuseLine := st.Form.String()
	if !st.Modules {
		fuseLine += " (this kernel cannot load modules)"
	}
	fmt.Fprintf(w, "FUSE:         %s\n", fuseLine)
	if st.Form == kmod.FormModule || st.Form == kmod.FormBuiltin {
		v := st.Version
		switch {
		case v == "":
			v = "none (the stock fuse has no version)"
		case kmod.IsCryptfsVersion(v) && v == st.Want:
			v += " (cryptfs, this binary's patch)"
		case kmod.IsCryptfsVersion(v):
			v += " (cryptfs, another patch than this binary's " + st.Want + ")"
		}
		if st.Taint != "" {
			v += ", taint " + st.Taint
		}
		fmt.Fprintf(w, "Version:      %s\n", v)
	}
	hook := st.Hook.String()
	switch st.Hook {
	case kmod.HookYes:
		hook += " (/dev/fuse knows FUSE_DEV_IOC_FASTPATH_ATTACH)"
	case kmod.HookNo:
		hook += " (/dev/fuse answers ENOTTY to the attach ioctl)"
	default:
		hook += " (" + st.HookErr + ")"
	}
	fmt.Fprintf(w, "Hook:         %s\n", hook)
	if st.Modprobe != "" {
		mp := st.Modprobe
		if st.ModprobeVersion != "" {
			mp += " (" + st.ModprobeVersion + ")"
		}
		fmt.Fprintf(w, "modprobe:     %s\n", mp)
	}
	if st.SecureBoot != "" {
		fmt.Fprintf(w, "Secure Boot:  %s\n", st.SecureBoot)
	}
	if st.Lockdown != "" {
		fmt.Fprintf(w, "Lockdown:     %s\n", st.Lockdown)
	}
	fmt.Fprintf(w, "ebpf tier:    %s\n", adv.Summary)
	if adv.Command != "" {
		fmt.Fprintf(w, "To get it:    sudo sh -c '%s'\n", adv.Command)
	}
	for _, n := range adv.Notes {
		fmt.Fprintf(w, "Note:         %s\n", n)
	}
}

func newKmodInstall(e env) *cobra.Command {
	var kver string
	var keep string
	c := &cobra.Command{
		Use:   "install",
		Short: "Build and install the cryptfs fuse module with DKMS (Debian 12's stock kernel; root)",
		Long: `Build the cryptfs fuse module (fuse.ko with the fast-path hook, plus
cuse.ko and virtiofs.ko, which must match it) from linux-source-6.1 and the
patch this binary carries, and install it with DKMS into
/lib/modules/KVER/updates/dkms, so that modprobe loads it for this and
every later kernel. Needs root, dkms, linux-headers-KVER and
linux-source-6.1 of the kernel's version; the build refuses any other
source. The running fuse is replaced only when it is reloaded
(modprobe -r fuse && modprobe fuse) or at the next boot.`,
		Args: args(0),
		RunE: func(c *cobra.Command, a []string) error {
			if os.Geteuid() != 0 {
				return withCode(exitError, "kmod install needs root (it runs dkms)")
			}
			if kver == "" {
				st := kmod.Probe()
				kver = st.Kernel
			}
			dir := keep
			if dir == "" {
				tmp, err := os.MkdirTemp("", "cryptfs-kmod-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			if err := writeKmodSources(dir); err != nil {
				return err
			}
			cmd := exec.Command(filepath.Join(dir, "dkms.sh"), "install", kver)
			cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("dkms.sh install %s: %w", kver, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&kver, "kver", "", "build for kernel `KVER` (default: the running one)")
	c.Flags().StringVar(&keep, "sources", "", "write the module's sources to `DIR` and keep them (default: a temporary directory)")
	return c
}

// writeKmodSources writes the embedded bpf/kernel/kmod files to dir and the
// patch series to dir/patches, the layout kmod/build.sh and kmod/dkms.sh
// use outside a source checkout.
func writeKmodSources(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "patches"), 0o755); err != nil {
		return err
	}
	return fs.WalkDir(kernel.Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var dst string
		switch {
		case strings.HasSuffix(p, ".patch") && !strings.Contains(p, "/"):
			dst = filepath.Join(dir, "patches", p)
		case strings.HasPrefix(p, "kmod/"):
			dst = filepath.Join(dir, strings.TrimPrefix(p, "kmod/"))
		default:
			return nil
		}
		b, err := kernel.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if path.Ext(p) == ".sh" {
			mode = 0o755
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		return nil
	})
}
