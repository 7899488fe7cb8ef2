package home

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
)

// swap puts the encrypted home in place of the plaintext one (step 5).
func swap(m *migration, u *User, say func(string, ...any)) error {
	if m.Phase == phaseSwapping {
		if err := checkLoggedOut(u); err != nil {
			return err
		}
		_, errHome := os.Lstat(m.Home)
		_, errKept := os.Lstat(m.Kept)
		if errKept != nil && errHome == nil {
			if err := os.Rename(m.Home, m.Kept); err != nil {
				return fmt.Errorf("move the plaintext home aside: %w", err)
			}
		}
		if _, err := os.Lstat(m.Home); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(m.Home, os.FileMode(m.HomeMode&0o777)); err != nil {
				return err
			}
		}
		if err := emptyDir(m.Home); err != nil {
			return err
		}
		if err := os.Lchown(m.Home, u.UID, u.GID); err != nil {
			return err
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, m.Home, m.HomeMode, 0); err != nil {
			return err
		}
		if err := os.Lchown(m.Cipher, u.UID, u.GID); err != nil {
			return err
		}
		if err := os.Chmod(m.Cipher, 0o700); err != nil {
			return err
		}
		if err := Save(Entry{User: m.User, Cipher: m.Cipher, Mountpoint: m.Home, Idle: m.Idle, FastPath: m.FastPath}); err != nil {
			return err
		}
		m.Phase = phaseSwapped
		if err := m.save(); err != nil {
			return err
		}
	}
	say(`The encrypted home is in place: %s logs in with the login password and gets it at %s.
The plaintext is kept at %s until you run:
    cryptfs home migrate --finish %s     (deletes the plaintext, once the user has checked the home)
    cryptfs home migrate --abandon %s    (puts the plaintext home back, deletes the encrypted copy)`,
		m.User, m.Home, m.Kept, m.User, m.User)
	if m.Source != m.Home {
		say("The source %s was not changed; remove it yourself once you no longer need it.", m.Source)
	}
	return nil
}

// emptyDir checks that dir is an empty directory.
func emptyDir(dir string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s should be the empty mountpoint but holds %d entries", dir, len(names))
	}
	return nil
}

// FinishMigration deletes the plaintext home a migration kept aside.
func FinishMigration(user string, say func(string, ...any)) error {
	m, err := loadMigration(user)
	if err != nil {
		return err
	}
	if m == nil || m.Phase != phaseSwapped {
		return fmt.Errorf("no finished migration of %s to confirm", user)
	}
	if _, err := os.Lstat(m.Kept); err == nil {
		say("Deleting the plaintext home %s ...", m.Kept)
		if err := os.RemoveAll(m.Kept); err != nil {
			return err
		}
	}
	os.Remove(stagingDir(user) + ".log")
	if err := os.Remove(migrationPath(user)); err != nil {
		return err
	}
	say("Done. The deleted plaintext may still be readable from the disk's free blocks until they are reused (on SSDs, until the drive discards them); only full-disk encryption or wiping the free space removes it.")
	return nil
}

// AbandonMigration undoes a migration of user at any phase: the plaintext
// home goes back in place, the registry entry and the new cipher tree are
// deleted.
func AbandonMigration(user string, say func(string, ...any)) error {
	m, err := loadMigration(user)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("no migration of %s to abandon", user)
	}
	u, err := LookupUser(user)
	if err != nil {
		return err
	}
	if err := checkLoggedOut(u); err != nil {
		return err
	}
	if Mounted(m.Home) {
		return fmt.Errorf("the encrypted home %s is mounted; run 'cryptfs home lock %s' first", m.Home, user)
	}
	staging := stagingDir(user)
	if err := clearStaging(m, staging); err != nil {
		return err
	}
	os.Remove(staging)
	os.Remove(staging + ".log")
	if err := Remove(user); err != nil {
		return err
	}
	if _, err := os.Lstat(m.Kept); err == nil {
		if _, err := os.Lstat(m.Home); err == nil {
			if err := emptyDir(m.Home); err != nil {
				return err
			}
			if err := os.Remove(m.Home); err != nil {
				return err
			}
		}
		if err := os.Rename(m.Kept, m.Home); err != nil {
			return err
		}
		say("Put the plaintext home back at %s.", m.Home)
	}
	if _, err := os.Lstat(m.Cipher); err == nil {
		if err := os.RemoveAll(m.Cipher); err != nil {
			return err
		}
		say("Deleted the encrypted copy %s.", m.Cipher)
	}
	return os.Remove(migrationPath(user))
}

// CheckLoginPassword reports whether password is user's login password,
// asking pam_unix's helper unix_chkpwd (as root it checks any user). It
// returns an error when the helper is not installed.
func CheckLoginPassword(user string, password []byte) (bool, error) {
	var helper string
	for _, p := range []string{"/usr/sbin/unix_chkpwd", "/sbin/unix_chkpwd"} {
		if _, err := os.Stat(p); err == nil {
			helper = p
			break
		}
	}
	if helper == "" {
		return false, errors.New("unix_chkpwd (libpam-modules-bin) is not installed")
	}
	cmd := exec.Command(helper, user, "nonull")
	in := append(append([]byte(nil), password...), 0)
	defer crypt.Wipe(in)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil
	}
	return err == nil, err
}

// MigrationUnderWay reports whether a migration of user has started and
// not been finished or abandoned.
func MigrationUnderWay(user string) bool {
	m, err := loadMigration(user)
	return err == nil && m != nil
}
