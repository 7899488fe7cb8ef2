// Package config reads and writes cryptfs.conf, the file that holds a
// cryptfs filesystem's format version, feature flags, KDF parameters and
// its master key wrapped under a password, and implements recovery keys.
// docs/format.md specifies the file byte for byte.
//
// What it promises:
//
//   - Parse is strict: unknown fields, missing fields, duplicate or
//     differently-cased keys, non-canonical base64 and any byte that differs
//     from the canonical serialisation are refused. Unknown format versions
//     and feature flags are refused with ErrUnsupported ("a newer cryptfs is
//     needed"); format version 1, which only pre-release builds wrote, with
//     ErrPrerelease (which says what to do); KDF parameters below the floor
//     with ErrWeakKDF unless the caller explicitly allows them (tests only).
//   - The version, feature flags and KDF parameters (including the salt)
//     are the additional data of the key wrap and the input of the key
//     check, so tampering with any of them is detected at unlock.
//   - A wrong password is ErrWrongPassword; a mistyped recovery key is
//     ErrRecoveryKeyTypo naming the group to re-check; a well-formed recovery
//     key of another filesystem is ErrWrongRecoveryKey.
//   - Files are written atomically: temp file in the same directory, fsync,
//     rename, fsync of the directory. Create never overwrites; Rewrap keeps
//     the previous file as cryptfs.conf.bak.
//   - Passwords are []byte so callers can wipe them; no error contains a
//     password or key material.
package config
