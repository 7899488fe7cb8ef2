package config

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/cryptfs/cryptfs/crypt"
)

// FileName is the config file's name at the cipher root.
const FileName = "cryptfs.conf"

// BackupSuffix is appended to the config path for the copy that earlier
// builds' passwd kept next to the config (cryptfs.conf.bak, still opening
// with the old password); passwd now removes it.
const BackupSuffix = ".bak"

// FeatureDeterministicNames is the feature flag of the deterministic-names
// mode (no per-directory IVs).
const FeatureDeterministicNames = "deterministic-names"

// knownFeatures lists the feature flags this version understands.
var knownFeatures = []string{FeatureDeterministicNames}

var (
	// ErrWrongPassword means the password did not unwrap the master key.
	ErrWrongPassword = errors.New("wrong password")
	// ErrRecoveryKeyTypo means the recovery key is not well-formed: a
	// character is wrong, missing, extra or swapped.
	ErrRecoveryKeyTypo = errors.New("recovery key mistyped")
	// ErrWrongRecoveryKey means the recovery key is well-formed but is not
	// this filesystem's key.
	ErrWrongRecoveryKey = errors.New("recovery key is valid but belongs to another filesystem")
	// ErrWeakKDF means the KDF parameters are below the floor.
	ErrWeakKDF = errors.New("KDF parameters below the minimum")
	// ErrUnsupported means an unknown format version or feature flag.
	ErrUnsupported = errors.New("unsupported cryptfs.conf")
	// ErrCorrupt means the file is malformed, not canonical, or its key
	// check does not match its key.
	ErrCorrupt = errors.New("cryptfs.conf is malformed or corrupt")
)

// Lengths of the binary fields.
const (
	SaltLen    = 32
	wrappedLen = chacha20poly1305.NonceSizeX + crypt.KeyLen + chacha20poly1305.Overhead // 72
	maxFileLen = 64 << 10
)

// Config is a parsed cryptfs.conf. The exported fields are what `cryptfs
// info` shows; changing them makes Unlock fail.
type Config struct {
	Version  uint16   // format version, crypt.FormatVersion (2)
	Features []string // sorted feature flags
	KDF      KDF      // password KDF, with salt
	wrapped  []byte   // nonce || XChaCha20-Poly1305(master) || tag
	keyCheck []byte   // BLAKE2b-256 under the key-check subkey over the AD
}

// CreateOptions are the choices made at init.
type CreateOptions struct {
	DeterministicNames bool
	KDF                *KDF // nil = DefaultKDF(); Salt must be empty
	AllowWeakKDF       bool // allow parameters below the floor (tests only)
}

// LoadOptions control Load and Parse.
type LoadOptions struct {
	AllowWeakKDF bool // accept parameters below the floor (tests only)
}

// DeterministicNames reports whether the deterministic-names feature is on.
func (c *Config) DeterministicNames() bool {
	return slices.Contains(c.Features, FeatureDeterministicNames)
}

// CryptOptions returns the crypt.Options the config's features select.
func (c *Config) CryptOptions() crypt.Options {
	return crypt.Options{DeterministicNames: c.DeterministicNames()}
}

// fileJSON is the canonical serialisation; field order is the file's order.
type fileJSON struct {
	Version    uint16   `json:"version"`
	Features   []string `json:"features"`
	KDF        kdfJSON  `json:"kdf"`
	WrappedKey string   `json:"wrapped_key"`
	KeyCheck   string   `json:"key_check"`
}

type kdfJSON struct {
	Algorithm string `json:"algorithm"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      string `json:"salt"`
}

// strictJSON has pointer fields so missing fields are detected.
type strictJSON struct {
	Version    *uint16        `json:"version"`
	Features   *[]string      `json:"features"`
	KDF        *strictKDFJSON `json:"kdf"`
	WrappedKey *string        `json:"wrapped_key"`
	KeyCheck   *string        `json:"key_check"`
}

type strictKDFJSON struct {
	Algorithm *string `json:"algorithm"`
	Time      *uint32 `json:"time"`
	MemoryKiB *uint32 `json:"memory_kib"`
	Threads   *uint8  `json:"threads"`
	Salt      *string `json:"salt"`
}

// b64 encodes the binary fields: standard base64 with padding, strict.
var b64 = base64.StdEncoding.Strict()

// marshal returns the canonical bytes of c: two-space indented JSON in
// field order, then a newline.
func (c *Config) marshal() []byte {
	f := fileJSON{
		Version:  c.Version,
		Features: append([]string{}, c.Features...),
		KDF: kdfJSON{
			Algorithm: c.KDF.Algorithm,
			Time:      c.KDF.Time,
			MemoryKiB: c.KDF.MemoryKiB,
			Threads:   c.KDF.Threads,
			Salt:      b64.EncodeToString(c.KDF.Salt),
		},
		WrappedKey: b64.EncodeToString(c.wrapped),
		KeyCheck:   b64.EncodeToString(c.keyCheck),
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic("config: marshal: " + err.Error()) // unreachable: plain types
	}
	return append(out, '\n')
}

// additionalData is the canonical byte encoding of everything the key wrap
// and key check cover (see docs/format.md):
//
//	"cryptfs.conf" || u16 version || u16 n || n × (u16 len || flag)
//	|| u16 len || algorithm || u32 time || u32 memory_kib || u8 threads
//	|| u16 len || salt
//
// All integers are big-endian.
func (c *Config) additionalData() []byte {
	b := []byte(FileName)
	b = binary.BigEndian.AppendUint16(b, c.Version)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Features)))
	for _, f := range c.Features {
		b = appendString16(b, f)
	}
	b = appendString16(b, c.KDF.Algorithm)
	b = binary.BigEndian.AppendUint32(b, c.KDF.Time)
	b = binary.BigEndian.AppendUint32(b, c.KDF.MemoryKiB)
	b = append(b, c.KDF.Threads)
	b = appendString16(b, string(c.KDF.Salt))
	return b
}

func appendString16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// prereleaseVersion is format version 1, which only pre-release builds
// wrote (docs/format.md, section 11).
const prereleaseVersion = 1

// ErrPrerelease means a config (or a file) of format version 1: a tree made
// by a pre-release cryptfs that no release reads. It wraps ErrUnsupported.
var ErrPrerelease = fmt.Errorf("%w: this tree was created by a pre-release cryptfs with format 1, which no release supports; copy the files out with that version, or re-create the tree", ErrUnsupported)

// checkVersionAndFeatures refuses unknown versions and flags with
// ErrUnsupported.
func checkVersionAndFeatures(version int64, features []string) error {
	switch {
	case version > crypt.FormatVersion:
		return fmt.Errorf("%w: format version %d, this cryptfs reads version %d: a newer cryptfs is needed", ErrUnsupported, version, crypt.FormatVersion)
	case version == prereleaseVersion:
		return ErrPrerelease
	case version != crypt.FormatVersion:
		return fmt.Errorf("%w: format version %d does not exist (this cryptfs reads version %d)", ErrUnsupported, version, crypt.FormatVersion)
	}
	for _, f := range features {
		if !slices.Contains(knownFeatures, f) {
			return fmt.Errorf("%w: feature flag %q is unknown to this cryptfs (it knows %s): a newer cryptfs is needed", ErrUnsupported, f, strings.Join(knownFeatures, ", "))
		}
	}
	return nil
}

// Parse parses and validates the bytes of a cryptfs.conf strictly: the
// input must be exactly the canonical serialisation of a valid config.
func Parse(data []byte, opts LoadOptions) (*Config, error) {
	if len(data) > maxFileLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrCorrupt, len(data), maxFileLen)
	}
	// A newer format may have other fields: look at the version and the
	// flags first, leniently, so that the user learns the real reason.
	var head struct {
		Version  *int64   `json:"version"`
		Features []string `json:"features"`
	}
	if json.Unmarshal(data, &head) == nil && head.Version != nil {
		if err := checkVersionAndFeatures(*head.Version, head.Features); err != nil {
			return nil, err
		}
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s strictJSON
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrCorrupt)
	}
	if err := s.missing(); err != nil {
		return nil, err
	}
	c := &Config{
		Version:  *s.Version,
		Features: *s.Features,
		KDF: KDF{
			Algorithm: *s.KDF.Algorithm,
			Time:      *s.KDF.Time,
			MemoryKiB: *s.KDF.MemoryKiB,
			Threads:   *s.KDF.Threads,
		},
	}
	if err := checkVersionAndFeatures(int64(c.Version), c.Features); err != nil {
		return nil, err
	}
	if !slices.IsSorted(c.Features) || len(slices.Compact(slices.Clone(c.Features))) != len(c.Features) {
		return nil, fmt.Errorf("%w: feature flags are not sorted and unique", ErrCorrupt)
	}
	var err error
	if c.KDF.Salt, err = decodeField("kdf.salt", *s.KDF.Salt, SaltLen); err != nil {
		return nil, err
	}
	if c.wrapped, err = decodeField("wrapped_key", *s.WrappedKey, wrappedLen); err != nil {
		return nil, err
	}
	if c.keyCheck, err = decodeField("key_check", *s.KeyCheck, crypt.KeyCheckLen); err != nil {
		return nil, err
	}
	if err := c.KDF.validate(opts.AllowWeakKDF); err != nil {
		return nil, err
	}
	if !bytes.Equal(c.marshal(), data) {
		return nil, fmt.Errorf("%w: not in canonical form (key order, spacing, escapes or final newline differ)", ErrCorrupt)
	}
	return c, nil
}

func (s *strictJSON) missing() error {
	var m []string
	add := func(isNil bool, name string) {
		if isNil {
			m = append(m, name)
		}
	}
	add(s.Version == nil, "version")
	add(s.Features == nil || *s.Features == nil, "features")
	add(s.KDF == nil, "kdf")
	if s.KDF != nil {
		add(s.KDF.Algorithm == nil, "kdf.algorithm")
		add(s.KDF.Time == nil, "kdf.time")
		add(s.KDF.MemoryKiB == nil, "kdf.memory_kib")
		add(s.KDF.Threads == nil, "kdf.threads")
		add(s.KDF.Salt == nil, "kdf.salt")
	}
	add(s.WrappedKey == nil, "wrapped_key")
	add(s.KeyCheck == nil, "key_check")
	if len(m) > 0 {
		return fmt.Errorf("%w: missing field(s) %s", ErrCorrupt, strings.Join(m, ", "))
	}
	return nil
}

func decodeField(name, s string, want int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: %s is not canonical base64", ErrCorrupt, name)
	}
	if len(b) != want {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", ErrCorrupt, name, len(b), want)
	}
	return b, nil
}

// Load reads and parses the config file at path.
func Load(path string, opts LoadOptions) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := Parse(data, opts)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// Create makes a new filesystem key and writes a config wrapping it under
// password to path, atomically; it refuses to overwrite an existing file.
// It returns the config and the master key (the caller wipes it).
func Create(path string, password []byte, opts CreateOptions) (cfg *Config, master []byte, err error) {
	if len(password) == 0 {
		return nil, nil, errors.New("create config: empty password")
	}
	kdf := DefaultKDF()
	if opts.KDF != nil {
		kdf = *opts.KDF
		if len(kdf.Salt) != 0 {
			return nil, nil, errors.New("create config: KDF.Salt must be empty, Create generates it")
		}
	}
	if err := kdf.validate(opts.AllowWeakKDF); err != nil {
		return nil, nil, fmt.Errorf("create config: %w", err)
	}
	c := &Config{Version: crypt.FormatVersion, Features: []string{}, KDF: kdf}
	if opts.DeterministicNames {
		c.Features = append(c.Features, FeatureDeterministicNames)
	}
	master = make([]byte, crypt.KeyLen)
	if _, err := io.ReadFull(rand.Reader, master); err != nil {
		return nil, nil, fmt.Errorf("create config: master key: %w", err)
	}
	if err := c.wrap(master, password); err != nil {
		crypt.Wipe(master)
		return nil, nil, fmt.Errorf("create config: %w", err)
	}
	if err := writeAtomic(path, c.marshal(), false); err != nil {
		crypt.Wipe(master)
		return nil, nil, fmt.Errorf("create config: %w", err)
	}
	return c, master, nil
}

// wrap sets a fresh salt, wraps master under password with a fresh nonce
// and recomputes the key check.
func (c *Config) wrap(master, password []byte) error {
	salt := make([]byte, SaltLen)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return fmt.Errorf("salt: %w", err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return fmt.Errorf("nonce: %w", err)
	}
	return c.wrapWith(master, password, salt, nonce)
}

// wrapWith is wrap with a caller-chosen salt and nonce (test vectors).
func (c *Config) wrapWith(master, password, salt, nonce []byte) error {
	if len(master) != crypt.KeyLen {
		return fmt.Errorf("master key is %d bytes, want %d", len(master), crypt.KeyLen)
	}
	c.KDF.Salt = slices.Clone(salt)
	ad := c.additionalData()
	kek := c.KDF.key(password)
	defer crypt.Wipe(kek)
	aead, err := crypt.NewXChaCha20Poly1305(kek) // reads kek in place: no copy to wipe
	if err != nil {
		return fmt.Errorf("wrap key: %w", err)
	}
	c.wrapped = aead.Seal(slices.Clone(nonce), nonce, master, ad)
	if c.keyCheck, err = crypt.KeyCheck(master, ad); err != nil {
		return err
	}
	return nil
}

// Unlock derives the key-encryption key from password and unwraps the
// master key. A wrong password (or a tampered wrap, version, flag or KDF
// parameter) fails with ErrWrongPassword.
func (c *Config) Unlock(password []byte) (master []byte, err error) {
	if err := c.KDF.validate(true); err != nil {
		return nil, fmt.Errorf("unlock: %w", err)
	}
	if len(c.wrapped) != wrappedLen {
		return nil, fmt.Errorf("unlock: %w: wrapped key is %d bytes", ErrCorrupt, len(c.wrapped))
	}
	ad := c.additionalData()
	kek := c.KDF.key(password)
	defer crypt.Wipe(kek)
	aead, err := crypt.NewXChaCha20Poly1305(kek) // reads kek in place: no copy to wipe
	if err != nil {
		return nil, fmt.Errorf("unlock: %w", err)
	}
	n := chacha20poly1305.NonceSizeX
	master, err = aead.Open(nil, c.wrapped[:n], c.wrapped[n:], ad)
	if err != nil {
		return nil, ErrWrongPassword
	}
	if err := c.checkKey(master); err != nil {
		crypt.Wipe(master)
		return nil, fmt.Errorf("unlock: %w: the key check does not match the unwrapped key", ErrCorrupt)
	}
	return master, nil
}

// checkKey reports whether master matches the config's key check.
func (c *Config) checkKey(master []byte) error {
	kc, err := crypt.KeyCheck(master, c.additionalData())
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(kc, c.keyCheck) != 1 {
		return ErrWrongRecoveryKey
	}
	return nil
}

// UnlockRecovery returns the master key given as a recovery key. A
// mistyped key fails with ErrRecoveryKeyTypo, a well-formed key of another
// filesystem with ErrWrongRecoveryKey.
func (c *Config) UnlockRecovery(recoveryKey string) (master []byte, err error) {
	master, err = ParseRecoveryKey(recoveryKey)
	if err != nil {
		return nil, err
	}
	if err := c.checkKey(master); err != nil {
		crypt.Wipe(master)
		return nil, ErrWrongRecoveryKey
	}
	return master, nil
}

// RewrapOptions control Rewrap.
type RewrapOptions struct {
	// Backup, if set, is a file to keep the previous config in (it still
	// opens with the old password): written atomically, never over an
	// existing file. Choose it outside the cipher tree, or every synced or
	// backed-up copy of the tree keeps opening with the old password.
	Backup string
}

// Rewrap (passwd) re-wraps the same master key under newPassword with a
// fresh salt and nonce and writes the new file atomically over path, then
// updates c. No copy of the previous file is kept unless opts.Backup names
// one. The file at path must still be c's serialisation and master must
// match c's key check.
func (c *Config) Rewrap(path string, master, newPassword []byte, opts RewrapOptions) error {
	if len(newPassword) == 0 {
		return errors.New("rewrap: empty password")
	}
	if len(master) != crypt.KeyLen || c.checkKey(master) != nil {
		return errors.New("rewrap: the master key does not belong to this config")
	}
	old, err := readFile(path)
	if err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	if !bytes.Equal(old, c.marshal()) {
		return fmt.Errorf("rewrap: %s changed since it was loaded; load it again", path)
	}
	next := *c
	next.Features = slices.Clone(c.Features)
	if err := next.wrap(master, newPassword); err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	if opts.Backup != "" {
		if err := writeAtomic(opts.Backup, old, false); err != nil {
			return fmt.Errorf("rewrap: keep the previous config: %w", err)
		}
	}
	if err := writeAtomic(path, next.marshal(), true); err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	*c = next
	return nil
}

// Marshal returns the canonical bytes of the config file.
func (c *Config) Marshal() []byte { return c.marshal() }

// tempPrefix starts every temporary file name; it is reserved (hidden).
const tempPrefix = crypt.ReservedPrefix + ".tmp."

func tempName(path string) (string, error) {
	var r [8]byte
	if _, err := io.ReadFull(rand.Reader, r[:]); err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(path), fmt.Sprintf("%s%s.%x", tempPrefix, filepath.Base(path), r)), nil
}
