package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestCreateWithKey: a config re-created around a tree's master key
// unlocks to that key with the new password and with the recovery key, has
// the features asked for, and replaces an existing file only when told.
func TestCreateWithKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	kdf := InsecureTestKDF()
	_, master, err := Create(path, []byte("old"), CreateOptions{KDF: &kdf, AllowWeakKDF: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := CreateOptions{KDF: &kdf, AllowWeakKDF: true, DeterministicNames: true}
	if _, err := CreateWithKey(path, master, []byte("new"), opts, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("without replace over an existing config: %v, want ErrExist", err)
	}
	os.Remove(path)
	if _, err := CreateWithKey(path, master, []byte("new"), opts, false); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateWithKey(path, master, []byte("newer"), opts, true); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, LoadOptions{AllowWeakKDF: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.DeterministicNames() {
		t.Errorf("features %v, want deterministic-names", c.Features)
	}
	got, err := c.Unlock([]byte("newer"))
	if err != nil || !bytes.Equal(got, master) {
		t.Errorf("unlock with the new password: %v", err)
	}
	if _, err := c.UnlockRecovery(RecoveryKey(master)); err != nil {
		t.Errorf("the recovery key no longer unlocks: %v", err)
	}
	if _, err := CreateWithKey(path, master[:5], []byte("x"), opts, true); err == nil {
		t.Errorf("a short key was accepted")
	}
}
