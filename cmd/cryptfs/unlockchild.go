package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/cryptfs/cryptfs/crypt"
)

// A foreground daemon (mount -f) never holds the password: like the
// background daemon, it gets only the master key, from a short-lived child
// (this binary again, `mount --internal-unlock`) that reads the password
// and unlocks the config. The password's traces cannot be wiped inside
// one Go process: Argon2 (x/crypto) hashes it into a BLAKE2b state of its
// own on the heap, freed unwiped, which stayed in a serving daemon's
// memory until the heap happened to reuse it (e2e TestDaemonKeysInMemory;
// SECURITY.md, "Key handling"). The child's memory goes with it.

// unlockFD is the child's descriptor for the key message.
const unlockFD = 3

// errReported is an error the command has already told the user about
// (the unlock child printed it): Main prints nothing more and exits with
// its code.
var errReported = errors.New("reported")

// unlockMessage follows the master key on the unlock child's descriptor.
type unlockMessage struct {
	Crypt     crypt.Options `json:"crypt"`
	Recovered bool          `json:"recovered"`
}

// unlockInChild runs `mount --internal-unlock` with the unlock flags of m
// on the same standard input, output and error (a terminal prompt works
// as before) and returns what it unlocked. A child that fails has printed
// why; the error returned carries its exit code and errReported.
func (m *mountFlags) unlockInChild(e env, cipherDir, mnt string) (keys, error) {
	self, err := os.Executable()
	if err != nil {
		return keys{}, err
	}
	argv := []string{"mount", "--internal-unlock"}
	if m.passfile != "" {
		argv = append(argv, "--passfile", m.passfile)
	}
	if m.extpass != "" {
		argv = append(argv, "--extpass", m.extpass)
	}
	if m.recoveryKey {
		argv = append(argv, "--recovery-key")
	}
	if m.config != "" {
		argv = append(argv, "--config", m.config)
	}
	if m.insecureKDF {
		argv = append(argv, "--insecure-kdf")
	}
	if m.reverse {
		argv = append(argv, "--reverse")
	}
	argv = append(argv, "--", cipherDir, mnt)
	keyR, keyW, err := os.Pipe()
	if err != nil {
		return keys{}, err
	}
	defer keyR.Close()
	cmd := exec.Command(self, argv...)
	cmd.Args[0] = "cryptfs" // not the mount helper's name, whatever this binary was called
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	cmd.ExtraFiles = []*os.File{keyW} // fd 3
	// Ctrl-C at the child's password prompt is the child's to handle (it
	// restores the terminal and exits 130); this process reports that. It
	// catches SIGINT meanwhile rather than ignoring it, which the child
	// would inherit.
	sigint := make(chan os.Signal, 1)
	signal.Notify(sigint, syscall.SIGINT)
	defer signal.Stop(sigint)
	if err := cmd.Start(); err != nil {
		keyW.Close()
		return keys{}, fmt.Errorf("start the unlock: %w", err)
	}
	keyW.Close()
	var msg unlockMessage
	master, rerr := readHandoff(keyR, &msg)
	werr := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee) && ee.ExitCode() > 0:
		wipe(master)
		return keys{}, &codedError{code: ee.ExitCode(), err: errReported}
	case werr != nil:
		wipe(master)
		return keys{}, fmt.Errorf("unlock: %w", werr)
	case rerr != nil:
		return keys{}, fmt.Errorf("read the key from the unlock: %w", rerr)
	}
	return keys{master: master, crypt: msg.Crypt, recovered: msg.Recovered}, nil
}

// runUnlockChild is `mount --internal-unlock`: unlock as mount would and
// write the master key and the unlock message to descriptor unlockFD.
func runUnlockChild(e env, m *mountFlags, cipherDir string) error {
	out := os.NewFile(unlockFD, "unlock")
	if out == nil {
		return errors.New("--internal-unlock: no key descriptor")
	}
	defer out.Close()
	k, err := m.unlockForMount(e, cipherDir)
	if err != nil {
		return err
	}
	defer wipe(k.master)
	tail, err := json.Marshal(unlockMessage{Crypt: k.crypt, Recovered: k.recovered})
	if err != nil {
		return err
	}
	buf := append(append(make([]byte, 0, len(k.master)+len(tail)), k.master...), tail...)
	_, err = out.Write(buf)
	wipe(buf)
	if err != nil {
		return fmt.Errorf("hand the key to the daemon: %w", err)
	}
	return nil
}
