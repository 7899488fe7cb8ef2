package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/crypt"
)

var weakOK = LoadOptions{AllowWeakKDF: true}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func checkMode0400(t *testing.T, path string) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o400 {
		t.Errorf("%s has mode %v, want -r--------", path, st.Mode())
	}
}

func TestCreateLoadUnlock(t *testing.T) {
	for _, det := range []bool{false, true} {
		dir := t.TempDir()
		path, c, master := createTestConfig(t, dir, []byte("pw"), CreateOptions{DeterministicNames: det})
		if len(master) != crypt.KeyLen || bytes.Equal(master, make([]byte, crypt.KeyLen)) {
			t.Fatalf("master key %x", master)
		}
		if got := dirEntries(t, dir); len(got) != 1 || got[0] != FileName {
			t.Fatalf("directory holds %v, want only %s (no temp file left)", got, FileName)
		}
		checkMode0400(t, path)
		l, err := Load(path, weakOK)
		if err != nil {
			t.Fatal(err)
		}
		if l.DeterministicNames() != det || c.DeterministicNames() != det || l.CryptOptions().DeterministicNames != det {
			t.Errorf("deterministic names = %v, want %v", l.DeterministicNames(), det)
		}
		if l.Version != crypt.FormatVersion || l.KDF.Algorithm != "argon2id" || len(l.KDF.Salt) != SaltLen {
			t.Errorf("loaded %+v", l)
		}
		got, err := l.Unlock([]byte("pw"))
		if err != nil || !bytes.Equal(got, master) {
			t.Fatalf("Unlock = %x, %v; want %x", got, err, master)
		}
		if _, err := Load(path, LoadOptions{}); !errors.Is(err, ErrWeakKDF) {
			t.Errorf("Load of test-KDF config without AllowWeakKDF: %v, want ErrWeakKDF", err)
		}
	}
}

func TestCreateDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 128 MiB Argon2id default KDF")
	}
	path := filepath.Join(t.TempDir(), FileName)
	_, master, err := Create(path, []byte("pw"), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultKDF(); c.KDF.Time != d.Time || c.KDF.MemoryKiB != d.MemoryKiB || c.KDF.Threads != d.Threads || c.KDF.Time != 3 || c.KDF.MemoryKiB != 131072 || c.KDF.Threads != 4 {
		t.Fatalf("default KDF stored as %+v", c.KDF)
	}
	if got, err := c.Unlock([]byte("pw")); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("Unlock: %v", err)
	}
}

func TestCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := createTestConfig(t, dir, []byte("pw"), CreateOptions{})
	before, _ := os.ReadFile(path)
	kdf := InsecureTestKDF()
	_, _, err := Create(path, []byte("other"), CreateOptions{KDF: &kdf, AllowWeakKDF: true})
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Create over an existing config: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("existing config modified")
	}
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Fatalf("directory holds %v", got)
	}

	other := filepath.Join(dir, "other.conf")
	salted := InsecureTestKDF()
	salted.Salt = make([]byte, SaltLen)
	tests := []struct {
		name string
		pw   string
		opts CreateOptions
		want error
	}{
		{"weak KDF not allowed", "pw", CreateOptions{KDF: &kdf}, ErrWeakKDF},
		{"salt given", "pw", CreateOptions{KDF: &salted, AllowWeakKDF: true}, nil},
		{"empty password", "", CreateOptions{KDF: &kdf, AllowWeakKDF: true}, nil},
		{"unknown algorithm", "pw", CreateOptions{KDF: &KDF{Algorithm: "scrypt", Time: 3, MemoryKiB: 1 << 17, Threads: 1}}, ErrUnsupported},
	}
	for _, tc := range tests {
		_, _, err := Create(other, []byte(tc.pw), tc.opts)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := os.Lstat(other); err == nil {
			t.Fatalf("%s: file written", tc.name)
		}
	}
}

func TestWrongPassword(t *testing.T) {
	_, c, _ := createTestConfig(t, t.TempDir(), []byte("right password"), CreateOptions{})
	for _, pw := range []string{"", "hunter2", "right passwor", "right password ", "Right password"} {
		_, err := c.Unlock([]byte(pw))
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("Unlock(%q): %v, want ErrWrongPassword", pw, err)
		}
		if pw != "" && strings.Contains(err.Error(), pw) {
			t.Fatalf("error %q contains the password", err)
		}
	}
}

func TestKDFFloor(t *testing.T) {
	tests := []struct {
		time, mem uint32
		threads   uint8
		weak      bool
		bad       bool
	}{
		{3, 65536, 4, false, false},
		{1, 196608, 1, false, false},
		{3, 131072, 4, false, false},
		{2, 65536, 1, true, false},
		{4, 32768, 1, true, false},
		{1, 1024, 1, true, false},
		{0, 65536, 1, false, true},
		{3, 65536, 0, false, true},
		{1, 7, 1, false, true},
		{1, 16, 4, false, true},
		{MaxTime + 1, 65536, 1, false, true},
		{1, MaxMemoryKiB + 1, 1, false, true},
	}
	for _, tc := range tests {
		k := KDF{Algorithm: "argon2id", Time: tc.time, MemoryKiB: tc.mem, Threads: tc.threads}
		err := k.validate(false)
		errAllowed := k.validate(true)
		switch {
		case tc.bad:
			if !errors.Is(err, ErrCorrupt) || !errors.Is(errAllowed, ErrCorrupt) {
				t.Errorf("%+v: %v / %v, want ErrCorrupt", k, err, errAllowed)
			}
		case tc.weak:
			if !errors.Is(err, ErrWeakKDF) || errAllowed != nil {
				t.Errorf("%+v: %v / %v, want ErrWeakKDF unless allowed", k, err, errAllowed)
			}
		default:
			if err != nil {
				t.Errorf("%+v: %v", k, err)
			}
		}
	}
	if err := DefaultKDF().validate(false); err != nil {
		t.Errorf("DefaultKDF below the floor: %v", err)
	}
}

// vectorFileBytes returns the vector config file.
func vectorFileBytes(t testing.TB) []byte {
	b, err := os.ReadFile(vectorConfFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperEveryByte changes every byte of the config file in several
// ways; each change must be refused by Parse or by Unlock with the right
// password.
func TestTamperEveryByte(t *testing.T) {
	file := vectorFileBytes(t)
	parsedOnly := 0
	for i := range file {
		for _, mut := range []func(byte) byte{
			func(b byte) byte { return b ^ 0x01 },
			func(b byte) byte { return b ^ 0x20 },
			func(byte) byte { return ' ' },
			func(byte) byte { return '0' },
		} {
			bad := bytes.Clone(file)
			bad[i] = mut(bad[i])
			if bytes.Equal(bad, file) {
				continue
			}
			c, err := Parse(bad, weakOK)
			if err != nil {
				continue
			}
			parsedOnly++
			if m, err := c.Unlock([]byte(vectorPassword)); err == nil {
				t.Fatalf("byte %d changed %q -> %q: unlocked to %x", i, file[i], bad[i], m)
			}
		}
	}
	if parsedOnly == 0 {
		t.Fatal("no mutation reached Unlock; the test checks only the parser")
	}
	t.Logf("%d mutations parsed and were refused by Unlock", parsedOnly)
}

// TestTamperDecodedFields changes each decoded field and re-serialises
// canonically, so only the cryptography can catch it.
func TestTamperDecodedFields(t *testing.T) {
	orig, err := Parse(vectorFileBytes(t), weakOK)
	if err != nil {
		t.Fatal(err)
	}
	clone := func() *Config {
		c := *orig
		c.Features = append([]string{}, orig.Features...)
		c.KDF.Salt = bytes.Clone(orig.KDF.Salt)
		c.wrapped = bytes.Clone(orig.wrapped)
		c.keyCheck = bytes.Clone(orig.keyCheck)
		return &c
	}
	type mutation struct {
		name string
		f    func(*Config)
		want error // from Parse or Unlock
	}
	muts := []mutation{
		{"features removed", func(c *Config) { c.Features = []string{} }, ErrWrongPassword},
		{"version 3", func(c *Config) { c.Version = 3 }, ErrUnsupported},
		{"version 1 (pre-release)", func(c *Config) { c.Version = 1 }, ErrPrerelease},
		{"time", func(c *Config) { c.KDF.Time++ }, ErrWrongPassword},
		{"memory", func(c *Config) { c.KDF.MemoryKiB += 8 }, ErrWrongPassword},
		{"threads", func(c *Config) { c.KDF.Threads++ }, ErrWrongPassword},
		{"algorithm", func(c *Config) { c.KDF.Algorithm = "argon2i" }, ErrUnsupported},
	}
	for i := range SaltLen {
		muts = append(muts, mutation{"salt byte", func(c *Config) { c.KDF.Salt[i] ^= 1 }, ErrWrongPassword})
	}
	for i := range wrappedLen {
		muts = append(muts, mutation{"wrapped key byte", func(c *Config) { c.wrapped[i] ^= 1 }, ErrWrongPassword})
	}
	for i := range crypt.KeyCheckLen {
		muts = append(muts, mutation{"key check byte", func(c *Config) { c.keyCheck[i] ^= 1 }, ErrCorrupt})
	}
	for i, m := range muts {
		c := clone()
		m.f(c)
		p, err := Parse(c.marshal(), weakOK)
		if err == nil {
			_, err = p.Unlock([]byte(vectorPassword))
		}
		if !errors.Is(err, m.want) {
			t.Errorf("%s (#%d): %v, want %v", m.name, i, err, m.want)
		}
	}
}

func TestParseStrict(t *testing.T) {
	file := string(vectorFileBytes(t))
	rep := func(old, new string) string {
		if !strings.Contains(file, old) {
			t.Fatalf("vector lacks %q", old)
		}
		return strings.Replace(file, old, new, 1)
	}
	saltB64 := base64.StdEncoding.EncodeToString(seq(0x50, SaltLen))
	tests := []struct {
		name string
		in   string
		want error
		msg  string
	}{
		{"empty", "", ErrCorrupt, ""},
		{"null", "null\n", ErrCorrupt, ""},
		{"array", "[]\n", ErrCorrupt, ""},
		{"unknown field", rep(`"version": 2,`, `"version": 2, "x": 1,`), ErrCorrupt, "unknown field"},
		{"missing key_check", rep(`,
  "key_check": "`+base64.StdEncoding.EncodeToString(vectorConfig(t).keyCheck)+`"`, ""), ErrCorrupt, "missing field(s) key_check"},
		{"missing salt", rep(`,
    "salt": "`+saltB64+`"`, ""), ErrCorrupt, "kdf.salt"},
		{"missing kdf", `{"version": 2, "features": []}`, ErrCorrupt, "missing field(s) kdf, wrapped_key, key_check"},
		{"null features", rep(`[
    "deterministic-names"
  ]`, "null"), ErrCorrupt, "features"},
		{"duplicate key", rep(`"version": 2,`, `"version": 2, "version": 2,`), ErrCorrupt, ""},
		{"upper-case key", rep(`"version"`, `"Version"`), ErrCorrupt, "canonical"},
		{"trailing data", file + "{}", ErrCorrupt, ""},
		{"no final newline", strings.TrimSuffix(file, "\n"), ErrCorrupt, "canonical"},
		{"CRLF", strings.ReplaceAll(file, "\n", "\r\n"), ErrCorrupt, "canonical"},
		{"tabs", strings.ReplaceAll(file, "  ", "\t"), ErrCorrupt, "canonical"},
		{"BOM", "\ufeff" + file, ErrCorrupt, ""},
		{"escaped character", rep(`"argon2id"`, `"argon\u0032id"`), ErrCorrupt, "canonical"},
		{"salt unpadded", rep(saltB64, strings.TrimRight(saltB64, "=")), ErrCorrupt, "kdf.salt"},
		{"salt url alphabet", rep(`"wrapped_key": "cHFyc3R1dnd4eXp7fH1+f4`, `"wrapped_key": "cHFyc3R1dnd4eXp7fH1-f4`), ErrCorrupt, "wrapped_key"},
		{"salt short", rep(saltB64, base64.StdEncoding.EncodeToString(seq(0x50, 31))), ErrCorrupt, "31 bytes"},
		{"version 3", rep(`"version": 2`, `"version": 3`), ErrUnsupported, "newer cryptfs is needed"},
		{"version 3 with new fields", `{"version": 3, "new": true}`, ErrUnsupported, "newer cryptfs is needed"},
		{"version 1 (pre-release)", rep(`"version": 2`, `"version": 1`), ErrPrerelease, "pre-release cryptfs with format 1, which no release supports; copy the files out with that version, or re-create the tree"},
		{"version 1 with old fields", `{"version": 1, "names": "v1"}`, ErrPrerelease, "re-create the tree"},
		{"version 0", rep(`"version": 2`, `"version": 0`), ErrUnsupported, "version 0"},
		{"version -1", rep(`"version": 2`, `"version": -1`), ErrUnsupported, ""},
		{"version string", rep(`"version": 2`, `"version": "2"`), ErrCorrupt, ""},
		{"unknown feature", rep(`"deterministic-names"`, `"encrypted-sizes"`), ErrUnsupported, `"encrypted-sizes" is unknown to this cryptfs`},
		{"unsorted features", rep(`"deterministic-names"`, `"deterministic-names", "deterministic-names"`), ErrCorrupt, "sorted and unique"},
		{"algorithm", rep(`"argon2id"`, `"argon2i"`), ErrUnsupported, "argon2i"},
		{"threads 0", rep(`"threads": 1`, `"threads": 0`), ErrCorrupt, "out of range"},
		{"threads 256", rep(`"threads": 1`, `"threads": 256`), ErrCorrupt, ""},
		{"memory huge", rep(`"memory_kib": 1024`, `"memory_kib": 4294967295`), ErrCorrupt, "out of range"},
		{"time float", rep(`"time": 1`, `"time": 1.0`), ErrCorrupt, ""},
		{"time exponent", rep(`"time": 1`, `"time": 1e0`), ErrCorrupt, ""},
		{"too large", strings.Repeat(" ", maxFileLen+1), ErrCorrupt, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in == file {
				t.Fatal("mutation did not change the file")
			}
			_, err := Parse([]byte(tc.in), weakOK)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Parse: %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := Parse([]byte(file), weakOK); err != nil {
		t.Fatalf("control: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.conf"), weakOK); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("{}\n"), 0o600)
	if _, err := Load(bad, weakOK); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt file: %v", err)
	}
}

func TestRecoveryUnlock(t *testing.T) {
	_, c, master := createTestConfig(t, t.TempDir(), []byte("pw"), CreateOptions{})
	key := RecoveryKey(master)
	got, err := c.UnlockRecovery(key)
	if err != nil || !bytes.Equal(got, master) {
		t.Fatalf("UnlockRecovery = %x, %v", got, err)
	}
	other := bytes.Clone(master)
	other[31] ^= 1
	if _, err := c.UnlockRecovery(RecoveryKey(other)); !errors.Is(err, ErrWrongRecoveryKey) || errors.Is(err, ErrRecoveryKeyTypo) {
		t.Fatalf("other key: %v, want ErrWrongRecoveryKey", err)
	}
	typo := []byte(key)
	typo[10] = nextSymbol(typo[10])
	if _, err := c.UnlockRecovery(string(typo)); !errors.Is(err, ErrRecoveryKeyTypo) || errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("typo: %v, want ErrRecoveryKeyTypo", err)
	}
	if _, err := c.UnlockRecovery(""); !errors.Is(err, ErrRecoveryKeyTypo) {
		t.Fatalf("empty: %v", err)
	}
}

func TestRewrap(t *testing.T) {
	dir := t.TempDir()
	path, c, master := createTestConfig(t, dir, []byte("old"), CreateOptions{DeterministicNames: true})
	oldSalt := bytes.Clone(c.KDF.Salt)

	if err := c.Rewrap(path, master, []byte("new"), RewrapOptions{}); err != nil {
		t.Fatal(err)
	}
	// No copy of the old wrapping is kept (issue 13.6).
	if got := dirEntries(t, dir); strings.Join(got, ",") != FileName {
		t.Fatalf("directory holds %v, want the config alone", got)
	}
	checkMode0400(t, path)
	l, err := Load(path, weakOK)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(l.KDF.Salt, oldSalt) || !bytes.Equal(l.KDF.Salt, c.KDF.Salt) {
		t.Fatal("salt not renewed, or c not updated")
	}
	if !l.DeterministicNames() {
		t.Fatal("feature flag lost")
	}
	if got, err := l.Unlock([]byte("new")); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("new password: %x, %v", got, err)
	}
	if _, err := l.Unlock([]byte("old")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password on the new file: %v", err)
	}
	if got, err := c.Unlock([]byte("new")); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("updated c: %v", err)
	}
	if got, err := l.UnlockRecovery(RecoveryKey(master)); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("recovery key after rewrap: %v", err)
	}

	// A backup where the caller says: the previous file, which still
	// opens with the old password, never over an existing file.
	second, _ := os.ReadFile(path)
	bakDir := t.TempDir()
	bak := filepath.Join(bakDir, "kept.bak")
	if err := c.Rewrap(path, master, []byte("newer"), RewrapOptions{Backup: bak}); err != nil {
		t.Fatal(err)
	}
	checkMode0400(t, bak)
	if got, _ := os.ReadFile(bak); !bytes.Equal(got, second) {
		t.Fatal("the backup is not the previous file")
	}
	b, err := Load(bak, weakOK)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Unlock([]byte("new")); err != nil || !bytes.Equal(got, master) {
		t.Fatalf("the previous password on the backup: %v", err)
	}
	third, _ := os.ReadFile(path)
	if err := c.Rewrap(path, master, []byte("newest"), RewrapOptions{Backup: bak}); err == nil {
		t.Fatal("Rewrap overwrote an existing backup")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, third) {
		t.Fatal("the config changed although keeping its backup failed")
	}
}

func TestRewrapRefuses(t *testing.T) {
	dir := t.TempDir()
	path, c, master := createTestConfig(t, dir, []byte("pw"), CreateOptions{})
	orig, _ := os.ReadFile(path)
	wrong := bytes.Clone(master)
	wrong[0] ^= 1
	stale, _ := Parse(orig, weakOK)
	if err := c.Rewrap(path, wrong, []byte("new"), RewrapOptions{}); err == nil {
		t.Fatal("Rewrap with another master key succeeded")
	}
	if err := c.Rewrap(path, master, nil, RewrapOptions{}); err == nil {
		t.Fatal("Rewrap to an empty password succeeded")
	}
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Fatalf("refused Rewrap wrote files: %v", got)
	}
	if err := c.Rewrap(path, master, []byte("new"), RewrapOptions{}); err != nil {
		t.Fatal(err)
	}
	// stale still describes the old file.
	if err := stale.Rewrap(path, master, []byte("other"), RewrapOptions{}); err == nil || !strings.Contains(err.Error(), "changed since it was loaded") {
		t.Fatalf("Rewrap of a stale config: %v", err)
	}
}

// TestAtomicWriteCrashBeforeRename simulates a failure after the temp file
// is written and synced: the target stays as it was and the temp file is
// removed; the temp file was complete and 0400 before the rename.
func TestAtomicWriteCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	path, c, master := createTestConfig(t, dir, []byte("pw"), CreateOptions{})
	orig, _ := os.ReadFile(path)
	var sawTemp bool
	testHookBeforeRename = func(tmp string) error {
		sawTemp = true
		if !crypt.IsReserved(filepath.Base(tmp), true) || filepath.Dir(tmp) != dir {
			t.Errorf("temp file %s is not a hidden file in the target directory", tmp)
		}
		checkMode0400(t, tmp)
		data, err := os.ReadFile(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, weakOK); err != nil {
			t.Errorf("temp file is incomplete before the rename: %v", err)
		}
		return errors.New("simulated crash")
	}
	defer func() { testHookBeforeRename = nil }()
	if err := c.Rewrap(path, master, []byte("new"), RewrapOptions{}); err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("Rewrap: %v", err)
	}
	if !sawTemp {
		t.Fatal("hook never saw the config's temp file")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
		t.Fatal("config changed although the write failed")
	}
	if got := dirEntries(t, dir); strings.Join(got, ",") != FileName {
		t.Fatalf("directory holds %v, want the config only", got)
	}
	if _, err := c.Unlock([]byte("pw")); err != nil {
		t.Fatalf("c changed although the write failed: %v", err)
	}
}

func TestReservedNames(t *testing.T) {
	for _, n := range []string{FileName, FileName + BackupSuffix} {
		if !crypt.IsReserved(n, true) {
			t.Errorf("%s is not reserved at the root", n)
		}
	}
	tmp, err := tempName("/x/" + FileName)
	if err != nil || !crypt.IsReserved(filepath.Base(tmp), false) {
		t.Errorf("temp name %s is not reserved (%v)", tmp, err)
	}
}
