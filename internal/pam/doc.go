// Package pam is the Go side of the PAM module pam_cryptfs.so (its C
// source is in module/): the stages the module runs as `cryptfs pam
// STAGE USER`, and the contract between the two.
//
// PAM modules are loaded into sshd, login, su, gdm and passwd, so the
// module is a thin C shim and all logic is here, in a separate process:
//
//   - auth: the module keeps a copy of the password (PAM_AUTHTOK) in the
//     PAM handle (pam_set_data; wiped when the handle ends) for users with
//     a registry entry (/etc/cryptfs/home/USER.conf), and returns
//     PAM_IGNORE: it never decides whether a login succeeds.
//   - open_session: `cryptfs pam open USER`, the password on standard
//     input; the home is counted and mounted (home.OpenSession).
//   - close_session: `cryptfs pam close USER`; the last session unmounts
//     (home.CloseSession).
//   - chauthtok (PAM_UPDATE_AUTHTOK): `cryptfs pam passwd USER`, the old
//     and the new password on standard input; the key is re-wrapped
//     (home.ChangePassword).
//
// # The contract
//
// The module runs the cryptfs binary by absolute path (module argument
// cryptfs=PATH; the binary and its directory must be root's and not
// writable by others), as root (real and effective), with an environment
// of PATH alone, standard input a socket carrying the secrets, and
// standard output and error one pipe. Secrets are never in argv or the
// environment. Standard input holds the secrets each ended by a NUL byte:
// for open the password (nothing when the session has none), for passwd
// the old password (empty when there is none, e.g. root's passwd USER)
// and the new one. Each line on standard error is "LEVEL MESSAGE", LEVEL
// one of info, notice, warning, error: the module passes every line to
// syslog (pam_syslog, with the PAM service's name) and shows warnings and
// errors to the user (pam_error) unless PAM_SILENT. The exit status is 0
// for success, anything else for a failure already logged. Messages also
// go to the home's log (/run/cryptfs/sessions/UID.log). No message holds a
// secret.
//
// The module is meant to be `optional` in every stack: a wrong or missing
// password, or any failure here, never blocks a login or a password
// change; the session opens without the home mounted and the log says
// why.
package pam
