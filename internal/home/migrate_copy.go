package home

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/fsck"
	"github.com/cryptfs/cryptfs/internal/holders"
)

// copyPhase copies, checks and verifies (steps 3 and 4).
func copyPhase(o MigrateOptions, u *User, m *migration, scan *Scan, say func(string, ...any)) error {
	cfg, err := config.Load(filepath.Join(m.Cipher, config.FileName), config.LoadOptions{AllowWeakKDF: o.AllowWeakKDF})
	if err != nil {
		return err
	}
	master, err := cfg.Unlock(o.Password)
	if errors.Is(err, config.ErrWrongPassword) {
		return fmt.Errorf("%s: %w", m.Cipher, ErrWrongPassword)
	}
	if err != nil {
		return err
	}
	defer crypt.Wipe(master)
	if scan == nil {
		if scan, err = preflight(m, say); err != nil {
			return err
		}
	}
	staging := stagingDir(m.User)
	if err := clearStaging(m, staging); err != nil {
		return err
	}
	progress := func(label string, files, bytes int64) Reporter {
		if o.Progress == nil {
			return nopReporter{}
		}
		return o.Progress(label, files, bytes)
	}
	if err := mountStaging(m, staging, master, o.AllowWeakKDF); err != nil {
		return err
	}
	say("Copying %s into the encrypted %s ...", m.Source, m.Cipher)
	c := newCopier(m.Source, staging, m.Drop, progress("copy  ", scan.Entries, scan.Bytes))
	err = c.run()
	c.bar.Done()
	if uerr := unmountStaging(m, staging); err == nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("copy: %w (run the same command again to resume)", err)
	}
	if c.dropped > 0 {
		say("Dropped %d extended attributes cryptfs cannot store.", c.dropped)
	}

	say("Checking the encrypted tree (fsck) ...")
	suite, err := crypt.New(master, cfg.CryptOptions())
	if err != nil {
		return err
	}
	rep, err := fsckTree(m, suite)
	suite.Wipe()
	if err != nil {
		return err
	}
	if !rep.Clean() {
		var b strings.Builder
		for i, p := range rep.Problems {
			if i == 10 {
				fmt.Fprintf(&b, "\n  ... and %d more", len(rep.Problems)-10)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %s: %s", p.Kind, p.Lower, p.Detail)
		}
		return fmt.Errorf("fsck found %d problems in the new tree; nothing was swapped:%s", len(rep.Problems), b.String())
	}

	for round := 1; ; round++ {
		if err := mountStaging(m, staging, master, o.AllowWeakKDF); err != nil {
			return err
		}
		say("Verifying every file against %s ...", m.Source)
		bar := progress("verify", scan.Entries, scan.Bytes)
		diffs, err := verifyTree(m.Source, staging, m.Drop, bar)
		bar.Done()
		if len(diffs) > 0 && err == nil && round == 1 {
			say("%d differences (the source changed?); copying them again:%s", len(diffs), listDiffs(diffs, staging, 5))
			c := newCopier(m.Source, staging, m.Drop, nil)
			for _, d := range diffs {
				c.force[d.Path] = true
			}
			err = c.run()
		}
		if uerr := unmountStaging(m, staging); err == nil {
			err = uerr
		}
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if len(diffs) == 0 {
			break
		}
		if round > 1 {
			return fmt.Errorf("the copy differs from %s; nothing was swapped:%s", m.Source, listDiffs(diffs, staging, 20))
		}
	}
	os.Remove(staging)
	say("Verified: every file, byte and attribute matches.")
	if err := withoutAtime(m, false, func(dir string) error { return chownInternal(dir, u) }); err != nil {
		return err
	}
	m.Phase = phaseSwapping
	return m.save()
}

// listDiffs lists up to n differences, paths relative to the staging
// mount, one per line.
func listDiffs(diffs []Diff, staging string, n int) string {
	var b strings.Builder
	for i, d := range diffs {
		if i == n {
			fmt.Fprintf(&b, "\n  ... and %d more", len(diffs)-n)
			break
		}
		fmt.Fprintf(&b, "\n  %s", strings.TrimPrefix(d.String(), staging+"/"))
	}
	return b.String()
}

// fsckTree checks the unmounted tree (withoutAtime, read-only), so that
// reading every block leaves the access times copied from the source as
// they are.
func fsckTree(m *migration, suite *crypt.Suite) (rep *fsck.Report, err error) {
	err = withoutAtime(m, true, func(dir string) error {
		rep, err = fsck.Check(dir, suite, nil)
		if rep != nil {
			for i := range rep.Problems {
				rep.Problems[i].Lower = m.Cipher + strings.TrimPrefix(rep.Problems[i].Lower, dir)
			}
		}
		return err
	})
	return rep, err
}

// withoutAtime runs fn on a bind mount of the cipher tree without access
// time updates (and read-only if ro): what fn reads leaves the access
// times the copy set.
func withoutAtime(m *migration, ro bool, fn func(dir string) error) error {
	dir := stagingDir(m.User) + ".bind"
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount(m.Cipher, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", m.Cipher, err)
	}
	defer unix.Unmount(dir, 0)
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOATIME)
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", dir, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s without access times: %w", dir, err)
	}
	return fn(dir)
}

// chownInternal gives the user cryptfs's own files in the tree (directory
// IVs, long-name sidecars), which the staging daemon created as root: the
// home's daemon runs as the user and must read them.
func chownInternal(cipher string, u *User) error {
	return filepath.WalkDir(cipher, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), crypt.ReservedPrefix) || path == filepath.Join(cipher, config.FileName) {
			if err := os.Lchown(path, u.UID, u.GID); err != nil {
				return err
			}
		}
		return nil
	})
}

// mountStaging mounts the cipher tree at the staging directory, for root
// only, served by a daemon that dies with this process.
func mountStaging(m *migration, staging string, master []byte, weak bool) error {
	for _, d := range []string{filepath.Dir(RunDir), filepath.Dir(staging), staging} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	logf, err := os.OpenFile(staging+".log", os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	p, err := Mount(MountOptions{
		Entry:  Entry{User: m.User, Cipher: m.Cipher, Mountpoint: staging, FastPath: "kernel-cache"},
		Secret: master, Key: true, Log: logf, DieWithCaller: true, AllowWeakKDF: weak,
	})
	if err != nil {
		return fmt.Errorf("mount the new tree at %s: %w (its log: %s.log)", staging, err, staging)
	}
	m.Staging = p
	return m.save()
}

// unmountStaging unmounts the staging mount and waits for its daemon.
func unmountStaging(m *migration, staging string) error {
	if err := Unmount(staging); err != nil {
		return err
	}
	if !waitExit(m.Staging, exitTimeout) {
		return fmt.Errorf("the daemon of %s (pid %d) does not exit", staging, m.Staging.PID)
	}
	m.Staging = Proc{}
	return m.save()
}

// clearStaging removes what an interrupted migration left: its daemon
// (which got SIGTERM when the migration died) and its mount.
func clearStaging(m *migration, staging string) error {
	waitExit(m.Staging, exitTimeout)
	for Mounted(staging) {
		if err := Unmount(staging); err != nil {
			if !errors.Is(err, ErrBusy) {
				return err
			}
			return fmt.Errorf("%s (the mount of an interrupted migration) is in use: %s", staging, holders.Describe(staging))
		}
	}
	if m.Staging.Running() {
		return fmt.Errorf("the daemon of an interrupted migration (pid %d) still runs", m.Staging.PID)
	}
	return nil
}
