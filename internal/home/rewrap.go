package home

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/peercred"
)

// Re-wrapping the key of a home under a new login password. With the old
// password (the user ran passwd) the user's own process does it
// (Rewrap). Without it (root ran passwd USER), only a running daemon still
// has the key: root asks it on the re-wrap socket (RewrapThroughDaemon),
// which only root can reach (root's 0600 socket in root's 0700 directory)
// and on which the daemon also checks the peer's uid.

// maxSecret bounds a password read from a pipe or socket.
const maxSecret = 4096

// Rewrap re-wraps the key of the cipher directory's config under
// newPassword, unlocking it with oldPassword, and removes the backup of
// the previous config (cryptfs.conf.bak, which the old password would
// still open: a login password is changed because the old one may be
// known). Runs as the home's user.
func Rewrap(cipher string, oldPassword, newPassword []byte, allowWeak bool) error {
	path := filepath.Join(cipher, config.FileName)
	cfg, master, err := unlock(path, oldPassword, false, allowWeak)
	if err != nil {
		return err
	}
	defer crypt.Wipe(master)
	return rewrapWith(cfg, path, master, newPassword)
}

func rewrapWith(cfg *config.Config, path string, master, newPassword []byte) error {
	if err := cfg.Rewrap(path, master, newPassword, config.RewrapOptions{}); err != nil {
		return err
	}
	if err := os.Remove(path + config.BackupSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("re-wrapped, but the backup that opens with the old password stays: %w", err)
	}
	return nil
}

// serveRewrap answers re-wrap requests from root: the new password, ended
// by a NUL byte; the reply is "ok" or "error MESSAGE".
func serveRewrap(l net.Listener, path string, master []byte, allowWeak bool, log zerolog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		err = rewrapRequest(c.(*net.UnixConn), path, master, allowWeak)
		if err != nil {
			log.Warn().Err(err).Msg("re-wrap request refused")
			fmt.Fprintf(c, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			log.Log().Msg("key re-wrapped under a new password at root's request")
			io.WriteString(c, "ok\n")
		}
		c.Close()
	}
}

func rewrapRequest(c *net.UnixConn, path string, master []byte, allowWeak bool) error {
	if uid, err := peercred.UID(c); err != nil || uid != 0 {
		return fmt.Errorf("only root may ask (peer uid %d, %v)", uid, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	pw, err := readSecret(c)
	if err != nil {
		return err
	}
	defer crypt.Wipe(pw)
	if len(pw) == 0 {
		return errors.New("empty password")
	}
	cfg, err := config.Load(path, config.LoadOptions{AllowWeakKDF: allowWeak})
	if err != nil {
		return err
	}
	return rewrapWith(cfg, path, master, pw)
}

// RewrapThroughDaemon asks the running daemon of uid's home to re-wrap its
// key under newPassword. It fails with an error wrapping os.ErrNotExist
// when no daemon listens (the home is not mounted by a session).
func RewrapThroughDaemon(uid int, newPassword []byte) error {
	c, err := net.DialTimeout("unix", SocketPath(uid), 5*time.Second)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("no daemon of this home listens: %w", os.ErrNotExist)
		}
		return err
	}
	defer c.Close()
	if peer, err := peercred.UID(c); err != nil || peer != uid {
		return fmt.Errorf("%s is served by uid %d, not %d: refusing to hand it a password", SocketPath(uid), peer, uid)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.Write(append(bytes.Clone(newPassword), 0)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return nil
	case strings.HasPrefix(line, "error "):
		return errors.New(strings.TrimPrefix(line, "error "))
	default:
		return fmt.Errorf("no answer from the daemon: %v", err)
	}
}

// readSecret reads one secret of at most maxSecret bytes, ended by a NUL
// byte or by the end of r. At the end of r it returns io.EOF.
func readSecret(r io.Reader) ([]byte, error) {
	b := make([]byte, 0, 64)
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == 0 {
				return b, nil
			}
			if len(b) == maxSecret {
				crypt.Wipe(b)
				return nil, errors.New("secret too long")
			}
			b = append(b, one[0])
			continue
		}
		switch {
		case err == io.EOF && len(b) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return b, nil
		case err != nil:
			crypt.Wipe(b)
			return nil, fmt.Errorf("read the secret: %w", err)
		}
	}
}

// lockedCopy returns a copy of key in memory locked against swapping
// where the limit allows (best effort).
func lockedCopy(key []byte) []byte {
	b := bytes.Clone(key)
	unix.Mlock(b)
	return b
}
