package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// optKind is what the helper does with a mount option it knows.
type optKind int

const (
	optIgnore optKind = iota // accepted, nothing to do (the reason says why)
	optVFS                   // a per-mount flag, set on the mount once it is up (root only)
	optRO                    // ro or rw
	optRefuse                // refused; the reason says what to do instead
)

type optRule struct {
	kind   optKind
	attr   uint64 // optVFS: the MOUNT_ATTR_* bit
	reason string
}

const (
	userRefusal = "mounting by users through fstab is not supported: a user runs 'cryptfs mount' (or the systemd user unit) directly; remove it from the options"
	pwRefusal   = "a password never goes in the mount options (they show up in ps, fstab and logs): use passfile=FILE (mode 0600) or extpass=CMD, or type it at the prompt"
)

// mountOptionRules are the generic mount options of mount(8), fstab and
// systemd that the helper knows. Any other option must be a flag of
// `cryptfs mount` (with _ or -), such as passfile=FILE or fast_path=off.
var mountOptionRules = map[string]optRule{
	"defaults":            {optIgnore, 0, "mount(8)'s default options"},
	"auto":                {optIgnore, 0, "read by mount -a"},
	"noauto":              {optIgnore, 0, "read by mount -a"},
	"nofail":              {optIgnore, 0, "read by mount -a and systemd"},
	"_netdev":             {optIgnore, 0, "read by systemd"},
	"nouser":              {optIgnore, 0, "only root mounts (the default)"},
	"rw":                  {optRO, 0, ""},
	"ro":                  {optRO, 0, ""},
	"async":               {optIgnore, 0, "the default"},
	"exec":                {optIgnore, 0, "the default"},
	"atime":               {optIgnore, 0, "the default"},
	"diratime":            {optIgnore, 0, "the default"},
	"relatime":            {optIgnore, 0, "the default"},
	"symfollow":           {optIgnore, 0, "the default"},
	"nosuid":              {optIgnore, 0, "cryptfs mounts are always nosuid"},
	"nodev":               {optIgnore, 0, "cryptfs mounts are always nodev"},
	"default_permissions": {optIgnore, 0, "the kernel always checks permissions on cryptfs mounts"},
	"noexec":              {optVFS, unix.MOUNT_ATTR_NOEXEC, ""},
	"noatime":             {optVFS, unix.MOUNT_ATTR_NOATIME, ""},
	"strictatime":         {optVFS, unix.MOUNT_ATTR_STRICTATIME, ""},
	"nodiratime":          {optVFS, unix.MOUNT_ATTR_NODIRATIME, ""},
	"nosymfollow":         {optVFS, unix.MOUNT_ATTR_NOSYMFOLLOW, ""},
	"suid":                {optRefuse, 0, "cryptfs mounts are always nosuid"},
	"dev":                 {optRefuse, 0, "cryptfs mounts are always nodev"},
	"sync":                {optRefuse, 0, "synchronous mounts are not supported"},
	"dirsync":             {optRefuse, 0, "synchronous mounts are not supported"},
	"lazytime":            {optRefuse, 0, "not supported by FUSE"},
	"mand":                {optRefuse, 0, "mandatory locks are not supported"},
	"remount":             {optRefuse, 0, "remounting is not supported: unmount and mount again"},
	"bind":                {optRefuse, 0, "use mount --bind on the plaintext mountpoint instead"},
	"rbind":               {optRefuse, 0, "use mount --rbind on the plaintext mountpoint instead"},
	"move":                {optRefuse, 0, "use mount --move instead"},
	"user":                {optRefuse, 0, userRefusal},
	"users":               {optRefuse, 0, userRefusal},
	"owner":               {optRefuse, 0, userRefusal},
	"group":               {optRefuse, 0, userRefusal},
	"password":            {optRefuse, 0, pwRefusal},
	"passwd":              {optRefuse, 0, pwRefusal},
	"pass":                {optRefuse, 0, pwRefusal},
	"pw":                  {optRefuse, 0, pwRefusal},
	"key":                 {optRefuse, 0, pwRefusal},
	"foreground":          {optRefuse, 0, "the helper mounts in the background; under systemd use the cryptfs@.service unit (cryptfs mount -f)"},
}

// mountPlan is what the helper runs for a set of options.
type mountPlan struct {
	flags    []string // cryptfs mount flags (--name=value), in option order
	attrSet  uint64   // MOUNT_ATTR_* to set on the mount once it is up
	attrClr  uint64   // MOUNT_ATTR_* to clear with them (the atime mask)
	vfsNames []string // the options behind attrSet, for messages
	ignored  []string // unknown options ignored because of -s
	password bool     // a password source was given (passfile, extpass, recovery key)
	passfile string
}

// splitOptions splits a mount option string at commas outside double
// quotes, as libmount does (opt="a,b").
func splitOptions(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, withCode(exitUsage, "unbalanced quote in mount options %q", s)
	}
	out = append(out, cur.String())
	return out, nil
}

// helperFlagDenied are flags of cryptfs mount that mount options may not
// set.
var helperFlagDenied = map[string]string{
	"foreground": mountOptionRules["foreground"].reason,
}

// parseMountOptions turns the helper's -o options into a plan. flags are
// the flags of `cryptfs mount` (a fresh set: values are checked by
// setting them). With sloppy, options it does not know are ignored (and
// listed in the plan) instead of refused.
func parseMountOptions(options []string, flags *pflag.FlagSet, sloppy bool) (*mountPlan, error) {
	p := &mountPlan{}
	type setting struct {
		name, value string
		bool        bool
	}
	var order []string
	values := map[string]setting{}
	set := func(s setting) {
		if _, ok := values[s.name]; !ok {
			order = append(order, s.name)
		}
		values[s.name] = s
	}
	for _, group := range options {
		opts, err := splitOptions(group)
		if err != nil {
			return nil, err
		}
		for _, opt := range opts {
			if opt == "" {
				continue
			}
			name, value, hasValue := strings.Cut(opt, "=")
			if strings.HasPrefix(name, "x-") || strings.HasPrefix(name, "X-") || name == "comment" {
				continue // for other programs (systemd, mount(8), fstab readers)
			}
			if r, ok := mountOptionRules[name]; ok {
				if r.kind == optRefuse {
					return nil, withCode(exitUsage, "option %s: %s", name, r.reason)
				}
				if hasValue {
					return nil, withCode(exitUsage, "option %s takes no value", name)
				}
				switch r.kind {
				case optRO:
					set(setting{name: "ro", value: strconv.FormatBool(name == "ro"), bool: true})
				case optVFS:
					if r.attr == unix.MOUNT_ATTR_NOATIME || r.attr == unix.MOUNT_ATTR_STRICTATIME {
						p.attrSet &^= unix.MOUNT_ATTR__ATIME
						p.attrClr |= unix.MOUNT_ATTR__ATIME
						p.vfsNames = slices.DeleteFunc(p.vfsNames, func(s string) bool { return s == "noatime" || s == "strictatime" })
					}
					p.attrSet |= r.attr
					if !slices.Contains(p.vfsNames, name) {
						p.vfsNames = append(p.vfsNames, name)
					}
				}
				continue
			}
			flagName := strings.ReplaceAll(name, "_", "-")
			f := flags.Lookup(flagName)
			if reason, denied := helperFlagDenied[flagName]; denied && f != nil {
				return nil, withCode(exitUsage, "option %s: %s", name, reason)
			}
			if f == nil || f.Hidden || f.Deprecated != "" {
				if sloppy {
					p.ignored = append(p.ignored, opt)
					continue
				}
				return nil, withCode(exitUsage, "unknown mount option %q (see 'man mount.fuse.cryptfs' for the options cryptfs takes)", name)
			}
			isBool := f.Value.Type() == "bool"
			switch {
			case isBool && !hasValue:
				value = "true"
			case !isBool && !hasValue:
				return nil, withCode(exitUsage, "option %s needs a value (%s=%s)", name, name, flagValueName(f))
			case !isBool && value == "":
				return nil, withCode(exitUsage, "option %s has an empty value", name)
			}
			if err := f.Value.Set(value); err != nil {
				return nil, withCode(exitUsage, "option %s: bad value %q: %v", name, value, err)
			}
			set(setting{name: flagName, value: value, bool: isBool})
		}
	}
	for _, name := range order {
		s := values[name]
		switch {
		case s.bool && s.value == "true":
			p.flags = append(p.flags, "--"+name)
		case s.bool:
			p.flags = append(p.flags, "--"+name+"="+s.value)
		default:
			p.flags = append(p.flags, "--"+name+"="+s.value)
		}
		switch name {
		case "passfile":
			p.password, p.passfile = true, s.value
		case "extpass":
			p.password = true
		case "recovery-key":
			p.password = p.password || s.value == "true"
		}
	}
	return p, nil
}

// flagValueName names a flag's value for messages and the manual: the
// `NAME` in its usage, else one from its type.
func flagValueName(f *pflag.Flag) string {
	name, _ := pflag.UnquoteUsage(f)
	switch name {
	case "", "string":
		return "VALUE"
	case "duration":
		return "DURATION"
	case "int", "uint", "int64", "uint64":
		return "N"
	}
	return name
}
