package home

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jacobsa/fuse"
	"github.com/rs/zerolog"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/crypt/config"
	"github.com/cryptfs/cryptfs/internal/daemon"
)

// DaemonOptions are the flags of the home daemon (cryptfs home daemon),
// the process Mount starts.
type DaemonOptions struct {
	Cipher, Mountpoint string
	Key                bool // the secret is the master key, not a password
	Rewrap             bool // serve re-wrap requests on fdRewrap
	AllowWeakKDF       bool
	Idle               time.Duration
	FastPath           string // "" for auto
	Transport          string // --transport: "" for auto, as cryptfs mount
	Poll               string // --poll: "" for auto, as cryptfs mount
	Log                zerolog.Logger
	LogFile            string // shown by cryptfs status
}

// RunDaemon is the home daemon: it reads the secret from its descriptor 3,
// unlocks the config, reports "unlocked" on descriptor 4, waits for root
// to mount (descriptor 5 says "mount"), and serves the /dev/fuse
// descriptor 6 until the home is unmounted, reporting "ok" once it
// answers. Runs as the home's user.
func RunDaemon(o DaemonOptions) error {
	status := os.NewFile(fdStatus, "status")
	reported := false
	report := func(err error) {
		if reported {
			return
		}
		reported = true
		if err == nil {
			io.WriteString(status, "ok\n")
		} else {
			kind := "other"
			if errors.Is(err, config.ErrWrongPassword) {
				kind = "wrong-password"
			}
			fmt.Fprintf(status, "error %s %s\n", kind, strings.ReplaceAll(err.Error(), "\n", " "))
		}
		status.Close()
	}
	err := runDaemon(o, status, report)
	report(err)
	return err
}

func runDaemon(o DaemonOptions, status *os.File, report func(error)) error {
	mode, err := daemon.ParseMode(cmp(o.FastPath, "auto"))
	if err != nil {
		return err
	}
	transport, err := fuse.ParseTransport(cmp(o.Transport, "auto"))
	if err != nil {
		return err
	}
	poll, err := daemon.ParsePoll(cmp(o.Poll, "auto"))
	if err != nil {
		return err
	}
	secretFile := os.NewFile(fdSecret, "secret")
	secret, err := io.ReadAll(io.LimitReader(secretFile, 4096))
	secretFile.Close()
	if err != nil {
		return fmt.Errorf("read the secret: %w", err)
	}
	defer crypt.Wipe(secret)
	cfgPath := filepath.Join(o.Cipher, config.FileName)
	cfg, master, err := unlock(cfgPath, secret, o.Key, o.AllowWeakKDF)
	if err != nil {
		return err
	}
	var rewrapKey []byte
	if o.Rewrap {
		rewrapKey = lockedCopy(master)
		defer crypt.Wipe(rewrapKey)
	}
	if _, err := io.WriteString(status, "unlocked\n"); err != nil {
		crypt.Wipe(master)
		return err
	}
	word, _ := bufio.NewReader(os.NewFile(fdGo, "go")).ReadString('\n')
	if strings.TrimSpace(word) != "mount" {
		crypt.Wipe(master)
		return errors.New("root did not mount the home")
	}
	if o.Rewrap {
		if err := syscall.Listen(fdRewrap, 8); err != nil {
			crypt.Wipe(master)
			return fmt.Errorf("re-wrap socket: %w", err)
		}
		l, err := net.FileListener(os.NewFile(fdRewrap, "rewrap"))
		if err != nil {
			crypt.Wipe(master)
			return fmt.Errorf("re-wrap socket: %w", err)
		}
		defer l.Close()
		go serveRewrap(l, cfgPath, rewrapKey, o.AllowWeakKDF, o.Log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return daemon.Serve(ctx, daemon.Options{
		CipherDir:  o.Cipher,
		Mountpoint: o.Mountpoint,
		Crypt:      cfg.CryptOptions(),
		Master:     master,
		FastPath:   mode,
		Log:        o.Log,
		LogFile:    o.LogFile,
		Device:     os.NewFile(fdDevice, "/dev/fuse"),
		Idle:       o.Idle,
		Transport:  transport,
		Poll:       poll,
		Ready:      report,
	})
}

// unlock loads the config at path and returns it with the master key,
// from a password or (key) the master key itself.
func unlock(path string, secret []byte, key, allowWeak bool) (*config.Config, []byte, error) {
	cfg, err := config.Load(path, config.LoadOptions{AllowWeakKDF: allowWeak})
	if err != nil {
		return nil, nil, err
	}
	if key {
		master, err := cfg.UnlockRecovery(config.RecoveryKey(secret))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: the key does not belong to it: %w", path, err)
		}
		return cfg, master, nil
	}
	master, err := cfg.Unlock(secret)
	if errors.Is(err, config.ErrWrongPassword) {
		return nil, nil, fmt.Errorf("%s: %w", path, ErrWrongPassword)
	}
	return cfg, master, err
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
