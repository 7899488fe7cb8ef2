package main

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/internal/mountinfo"
)

// The mount helper. mount(8) (util-linux libmount) runs /sbin/mount.TYPE
// for `mount -t TYPE`, for an /etc/fstab line, and so for the .mount units
// systemd's fstab generator makes, as
//
//	/sbin/mount.fuse.cryptfs CIPHERDIR MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS] [-t TYPE] [-N NS]
//
// (libmount/src/context_mount.c, exec_helper; /sbin:/sbin/fs.d:/sbin/fs is
// its fixed search path, where "fuse.cryptfs" is tried before "fuse"). The
// same binary is the helper when it is called by one of these names:
// `make install` links them to cryptfs. The helper turns the options into
// the flags of `cryptfs mount` and runs it in the background: it returns
// once the mount answers, as mount(8) expects.

// mountHelperNames are the names under which the binary is the mount
// helper: for type fuse.cryptfs (the kernel's name for our mounts) and
// for type cryptfs.
var mountHelperNames = []string{"mount.fuse.cryptfs", "mount.cryptfs"}

// mountHelperName returns the helper name argv0 calls the binary by, or
// "" when it is the cryptfs command.
func mountHelperName(argv0 string) string {
	base := argv0
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	if slices.Contains(mountHelperNames, base) {
		return base
	}
	return ""
}

// mountHelperMain runs the mount helper on os.Args and returns the exit code.
func mountHelperMain(name string) int {
	return runMountHelper(name, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
}

func runMountHelper(name string, args []string, e env) int {
	err := mountHelper(name, args, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
	}
	return exitCode(err)
}

// helperArgs is the helper's command line.
type helperArgs struct {
	source, target string
	options        []string // the -o arguments, in order
	sloppy         bool     // -s: ignore options we do not know, with a warning
	fake           bool     // -f: check everything, mount nothing
	verbose        bool     // -v: say what is run
	fstype         string   // -t
	help           bool
}

// parseHelperArgs parses the helper's argv (without argv[0]) the way
// getopt does: short options may be grouped and come before, between or
// after the two directories; "--" ends them.
func parseHelperArgs(args []string) (helperArgs, error) {
	var h helperArgs
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if a == "-h" || a == "--help" {
			h.help = true
			continue
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		if a[1] == '-' {
			return h, withCode(exitUsage, "unknown option %s (see 'man mount.fuse.cryptfs')", a)
		}
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 's':
				h.sloppy = true
			case 'f':
				h.fake = true
			case 'v':
				h.verbose = true
			case 'n':
				// Do not write /etc/mtab: we never do.
			case 'r':
				h.options = append(h.options, "ro")
			case 'w':
				h.options = append(h.options, "rw")
			case 'o', 't', 'N':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return h, withCode(exitUsage, "option -%c needs a value", c)
					}
					i++
					val = args[i]
				}
				switch c {
				case 'o':
					h.options = append(h.options, val)
				case 't':
					h.fstype = val
				case 'N':
					return h, withCode(exitUsage, "-N (mount in another mount namespace) is not supported: run mount inside that namespace")
				}
				j = len(a)
			default:
				return h, withCode(exitUsage, "unknown option -%c (see 'man mount.fuse.cryptfs')", c)
			}
		}
	}
	if h.help {
		return h, nil
	}
	if len(pos) != 2 {
		return h, withCode(exitUsage, "needs 2 arguments, CIPHERDIR and MOUNTPOINT, got %d\nUsage: %s", len(pos), mountHelperUsage)
	}
	h.source, h.target = pos[0], pos[1]
	switch h.fstype {
	case "", "fuse.cryptfs", "cryptfs":
	default:
		return h, withCode(exitUsage, "type %s is not cryptfs (use -t fuse.cryptfs)", h.fstype)
	}
	return h, nil
}

const mountHelperUsage = "mount.fuse.cryptfs CIPHERDIR MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTIONS]"

// mountHelper mounts as mount(8) asks.
func mountHelper(name string, args []string, e env) error {
	h, err := parseHelperArgs(args)
	if err != nil {
		return err
	}
	mountCmd := newMount(e)
	if h.help {
		doc := newMountHelperDoc(mountCmd)
		doc.SetOut(e.stdout)
		return doc.Help()
	}
	flags := mountCmd.Flags()
	flags.AddFlagSet(mountCmd.InheritedFlags())
	plan, err := parseMountOptions(h.options, flags, h.sloppy)
	if err != nil {
		return err
	}
	for _, o := range plan.ignored {
		fmt.Fprintf(e.stderr, "%s: ignoring unknown option %q (-s)\n", name, o)
	}
	if plan.attrSet != 0 && os.Geteuid() != 0 {
		return withCode(exitUsage, "option %s: needs root (set on the mount once it is up); leave it out", strings.Join(plan.vfsNames, ","))
	}
	if plan.passfile != "" {
		if err := checkPassfile(plan.passfile); err != nil {
			return err
		}
	}
	if !plan.password && stdinIsDevNull(e) {
		return withCode(exitUsage, "no password: add passfile=FILE (mode 0600) or extpass=CMD to the mount options, or mount from a terminal")
	}
	argv := append(append([]string{"mount"}, plan.flags...), "--", h.source, h.target)
	if h.verbose {
		fmt.Fprintf(e.stderr, "%s: cryptfs %s\n", name, strings.Join(argv, " "))
		if plan.attrSet != 0 {
			fmt.Fprintf(e.stderr, "%s: then set %s on %s\n", name, strings.Join(plan.vfsNames, ","), h.target)
		}
	}
	if h.fake {
		return nil
	}
	root := newRoot(e)
	root.SetArgs(argv)
	if err := root.Execute(); err != nil {
		return err
	}
	if plan.attrSet == 0 {
		return nil
	}
	if err := setMountAttrs(h.target, plan.attrSet, plan.attrClr); err != nil {
		root := newRoot(e)
		root.SetArgs([]string{"unmount", "--", h.target})
		if uerr := root.Execute(); uerr != nil {
			return fmt.Errorf("set %s on %s: %w; and unmounting it again failed: %v", strings.Join(plan.vfsNames, ","), h.target, err, uerr)
		}
		return fmt.Errorf("set %s on %s: %w (unmounted it again)", strings.Join(plan.vfsNames, ","), h.target, err)
	}
	return nil
}

// checkPassfile refuses a password file that other users can read or
// change: it is read by root at boot.
func checkPassfile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("passfile: %w", err)
	}
	if !st.Mode().IsRegular() {
		return withCode(exitUsage, "passfile %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o027 != 0 {
		return withCode(exitUsage, "passfile %s is open to other users (mode %04o): chmod 600 %s", path, perm, path)
	}
	if sys, ok := st.Sys().(*unix.Stat_t); ok {
		uid := int(sys.Uid)
		if uid != 0 && uid != os.Geteuid() {
			return withCode(exitUsage, "passfile %s belongs to uid %d: it must belong to root or to you", path, uid)
		}
	}
	return nil
}

// stdinIsDevNull reports whether standard input is /dev/null, as for
// mounts at boot: no password can come from there.
func stdinIsDevNull(e env) bool {
	f, ok := e.stdin.(*os.File)
	if !ok {
		return false
	}
	var in, null unix.Stat_t
	if unix.Fstat(int(f.Fd()), &in) != nil || unix.Stat("/dev/null", &null) != nil {
		return false
	}
	return in.Mode&unix.S_IFMT == unix.S_IFCHR && in.Rdev == null.Rdev
}

// setMountAttrs sets per-mount attributes (noexec, noatime...) on the
// cryptfs mount at target with mount_setattr(2). It acts on a descriptor
// of the mount's root that it checked is the FUSE mount the mount table
// lists there, so that a path changed in between cannot redirect it to
// another mount; and it only adds restrictions, never clears ro, nosuid
// or nodev.
func setMountAttrs(target string, set, clr uint64) error {
	fd, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", target, err)
	}
	defer unix.Close(fd)
	dev, err := mountinfo.FUSEDevice(target)
	if err != nil {
		return err
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_BASIC_STATS, &stx); err != nil {
		return fmt.Errorf("statx %s: %w", target, err)
	}
	if stx.Dev_major<<20|stx.Dev_minor != dev {
		return fmt.Errorf("%s is not the cryptfs mount the mount table lists there", target)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("%s is not the root of a mount", target)
	}
	attr := &unix.MountAttr{Attr_set: set, Attr_clr: clr}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// newMountHelperDoc describes the helper for its man page and -h: the
// generic options it knows and the flags of cryptfs mount it passes on.
func newMountHelperDoc(mountCmd *cobra.Command) *cobra.Command {
	var cryptfsOpts []string
	mountCmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		if _, denied := helperFlagDenied[f.Name]; denied {
			return
		}
		_, usage := pflag.UnquoteUsage(f)
		opt := strings.ReplaceAll(f.Name, "-", "_")
		if f.Value.Type() != "bool" {
			opt += "=" + flagValueName(f)
		}
		cryptfsOpts = append(cryptfsOpts, fmt.Sprintf("  %s\n      %s", opt, usage))
	})
	var vfs, ignored, refused []string
	for name, r := range mountOptionRules {
		switch r.kind {
		case optVFS:
			vfs = append(vfs, name)
		case optIgnore:
			ignored = append(ignored, name)
		case optRefuse:
			refused = append(refused, name)
		}
	}
	sort.Strings(vfs)
	sort.Strings(ignored)
	sort.Strings(refused)
	long := `mount(8) runs this helper for 'mount -t fuse.cryptfs' (or -t cryptfs),
for an /etc/fstab line of that type, and so for the mount units systemd
makes from fstab. It mounts CIPHERDIR at MOUNTPOINT with 'cryptfs mount'
in the background and returns once the mount answers; 'umount MOUNTPOINT'
or 'cryptfs unmount MOUNTPOINT' ends it.

  mount -t fuse.cryptfs -o passfile=/etc/cryptfs/data.pass /srv/data.cipher /srv/data

  # /etc/fstab
  /srv/data.cipher  /srv/data  fuse.cryptfs  passfile=/etc/cryptfs/data.pass,allow_other,nofail  0  0

The password comes from passfile=FILE (its first line; the file must not
be open to other users), from extpass=CMD, or from the terminal mount runs
on. It never goes in the options. At boot there is no terminal: use
passfile=.

Options of cryptfs mount (with _ or -):
` + strings.Join(cryptfsOpts, "\n") + `

Mount options set on the mount once it is up (as root): ` + strings.Join(vfs, ", ") + `.
Accepted and without effect: ` + strings.Join(ignored, ", ") + `, comment=, and x-* (for systemd and other programs).
Refused, with what to do instead: ` + strings.Join(refused, ", ") + `.
user and users are refused: a user mounts with 'cryptfs mount' directly.
Unknown options are an error; -s ignores them with a warning.

Flags: -s ignore unknown options (sloppy), -f check everything but do not
mount (fake), -v say what is run, -n is accepted (nothing to write to
/etc/mtab), -r and -w mean ro and rw, -t names the type (fuse.cryptfs or
cryptfs).

Exit codes: those of cryptfs (see 'cryptfs exit-codes'); 2 for bad
options.`
	return &cobra.Command{
		Use:   mountHelperUsage,
		Short: "mount helper for cryptfs: mount -t fuse.cryptfs and /etc/fstab",
		Long:  long,
		Run:   func(*cobra.Command, []string) {},
	}
}
