/*
 * pam_cryptfs: the PAM module of cryptfs encrypted home directories.
 *
 * A thin shim: all logic is in `cryptfs pam STAGE USER` (internal/pam),
 * which this module runs as root, by absolute path, with a clean
 * environment, the secrets on standard input (a socket: never argv or the
 * environment) and its messages on a pipe that goes to syslog. For users
 * without an encrypted home (no trusted /etc/cryptfs/home/USER.conf) it
 * does nothing and returns PAM_IGNORE. It never decides whether a login
 * succeeds: use it as "optional".
 *
 *   auth           keeps a copy of PAM_AUTHTOK (pam_set_data, wiped when
 *                  the handle ends or the session opens); PAM_IGNORE
 *   session open   cryptfs pam open USER   (the password, NUL-ended)
 *   session close  cryptfs pam close USER
 *   password       cryptfs pam passwd USER (old and new password, each
 *                  NUL-ended; the old one empty when PAM has none, as in
 *                  root's passwd USER), in the PAM_UPDATE_AUTHTOK phase
 *
 * Module arguments: cryptfs=PATH (the binary; default CRYPTFS_BIN; it and
 * its directory must be owned by root and not writable by group or
 * others), debug.
 *
 * Copyright the cryptfs authors. Apache 2.0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#define PAM_SM_AUTH
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#ifndef CRYPTFS_BIN
#define CRYPTFS_BIN "/usr/local/bin/cryptfs"
#endif
#define REGISTRY_PARENT "/etc/cryptfs"
#define REGISTRY_DIR REGISTRY_PARENT "/home"
#define DATA_AUTHTOK "pam_cryptfs_authtok"
#define MAX_LINE 1024
#define MAX_LINES 200

#define EXPORT __attribute__((visibility("default")))

struct options {
	const char *bin;
	int debug;
};

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o)
{
	o->bin = CRYPTFS_BIN;
	o->debug = 0;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "cryptfs=", 8) == 0)
			o->bin = argv[i] + 8;
		else if (strcmp(argv[i], "debug") == 0)
			o->debug = 1;
		else
			pam_syslog(pamh, LOG_WARNING, "unknown option %s", argv[i]);
	}
}

/* valid_user: the rule of home.ValidUser (Go): 1 to 32 characters from
 * [A-Za-z0-9._-], not starting with '-' or '.'. */
static int valid_user(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > 32 || u[0] == '-' || u[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = u[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* root_only: path (not followed) is of type type, owned by root, and not
 * writable by group or others. */
static int root_only(const char *path, mode_t type)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return 0;
	return (st.st_mode & S_IFMT) == type && st.st_uid == 0 && !(st.st_mode & 022);
}

/* has_home: user has a trusted registry entry, as home.Load (Go) decides. */
static int has_home(const char *user)
{
	char path[PATH_MAX];

	if (!valid_user(user))
		return 0;
	if (!root_only(REGISTRY_PARENT, S_IFDIR) || !root_only(REGISTRY_DIR, S_IFDIR))
		return 0;
	if (snprintf(path, sizeof(path), "%s/%s.conf", REGISTRY_DIR, user) >= (int)sizeof(path))
		return 0;
	return root_only(path, S_IFREG);
}

/* trusted_binary: the binary we run as root is root's and so is its
 * directory, neither writable by group or others. */
static int trusted_binary(pam_handle_t *pamh, const char *bin)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;

	if (bin[0] != '/') {
		pam_syslog(pamh, LOG_ERR, "cryptfs=%s is not an absolute path", bin);
		return 0;
	}
	if (stat(bin, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		pam_syslog(pamh, LOG_ERR, "%s is missing, or not a file of root's that only root may write", bin);
		return 0;
	}
	if (snprintf(dir, sizeof(dir), "%s", bin) >= (int)sizeof(dir))
		return 0;
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		pam_syslog(pamh, LOG_ERR, "the directory of %s is not root's alone", bin);
		return 0;
	}
	return 1;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void cleanup_authtok(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	wipe_free(data);
}

/* relay: one line of the child's output to syslog, and warnings and errors
 * also to the user where show is set. */
static void relay(pam_handle_t *pamh, const char *line, int show)
{
	static const struct {
		const char *word;
		int prio;
		int user;
	} levels[] = {
		{"error ", LOG_ERR, 1},
		{"warning ", LOG_WARNING, 1},
		{"notice ", LOG_NOTICE, 0},
		{"info ", LOG_INFO, 0},
	};
	int prio = LOG_NOTICE, user = 0;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		size_t n = strlen(levels[i].word);
		if (strncmp(line, levels[i].word, n) == 0) {
			line += n;
			prio = levels[i].prio;
			user = levels[i].user;
			break;
		}
	}
	if (*line == '\0')
		return;
	pam_syslog(pamh, prio, "%s", line);
	if (user && show)
		pam_error(pamh, "cryptfs: %s", line);
}

/* send_all writes n bytes to a socket; MSG_NOSIGNAL: a child that died
 * early must not kill the application with SIGPIPE. */
static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* run runs `BIN pam STAGE -- USER` as root with the secrets on its
 * standard input and relays its output. Returns its exit status, or -1. */
static int run(pam_handle_t *pamh, const struct options *o, const char *stage, const char *user,
	       const char *const *secrets, int nsecrets, int show)
{
	int in[2], out[2], status = -1;
	struct sigaction dfl, old_chld;
	pid_t pid;

	if (!trusted_binary(pamh, o->bin))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	/* The application may reap children itself (sshd does): have
	 * ours reaped by waitpid below only. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, &old_chld);

	pid = fork();
	if (pid == 0) {
		char *const argv[] = {(char *)o->bin, "pam", (char *)stage, "--", (char *)user, NULL};
		char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
		sigset_t none;

		if (dup2(in[1], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Root in every uid and gid (su and passwd run set-uid). */
		if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
			_exit(126);
		execve(o->bin, argv, envp);
		_exit(127);
	}
	close(in[1]);
	close(out[1]);
	if (pid < 0) {
		close(in[0]);
		close(out[0]);
		sigaction(SIGCHLD, &old_chld, NULL);
		return -1;
	}
	for (int i = 0; i < nsecrets; i++) {
		const char *s = secrets[i] ? secrets[i] : "";
		if (send_all(in[0], s, strlen(s) + 1) != 0)
			break;
	}
	shutdown(in[0], SHUT_WR);

	/* Relay the output, line by line (bounded). */
	{
		char line[MAX_LINE + 1];
		size_t len = 0;
		int lines = 0;
		char buf[4096];
		ssize_t n;

		for (;;) {
			n = read(out[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] == '\n' || len == MAX_LINE) {
					line[len] = '\0';
					if (lines++ < MAX_LINES)
						relay(pamh, line, show);
					len = 0;
					if (buf[i] == '\n')
						continue;
				}
				line[len++] = buf[i];
			}
		}
		if (len > 0 && lines < MAX_LINES) {
			line[len] = '\0';
			relay(pamh, line, show);
		}
	}
	close(out[0]);
	close(in[0]);
	for (;;) {
		int st;
		pid_t w = waitpid(pid, &st, 0);
		if (w == pid) {
			if (WIFEXITED(st))
				status = WEXITSTATUS(st);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	sigaction(SIGCHLD, &old_chld, NULL);
	if (o->debug)
		pam_syslog(pamh, LOG_DEBUG, "cryptfs pam %s %s: exit status %d", stage, user, status);
	return status;
}

/* get_user returns the user of the handle without prompting, or NULL. */
static const char *get_user(pam_handle_t *pamh)
{
	const void *user = NULL;

	if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL)
		return NULL;
	return user;
}

EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *user = get_user(pamh);
	const void *tok = NULL;
	struct options o;
	char *copy;

	(void)flags;
	parse_options(pamh, argc, argv, &o);
	if (user == NULL || !has_home(user))
		return PAM_IGNORE;
	if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS || tok == NULL) {
		if (o.debug)
			pam_syslog(pamh, LOG_DEBUG, "no password to keep for %s", user);
		return PAM_IGNORE;
	}
	copy = strdup(tok);
	if (copy == NULL)
		return PAM_IGNORE;
	if (pam_set_data(pamh, DATA_AUTHTOK, copy, cleanup_authtok) != PAM_SUCCESS)
		wipe_free(copy);
	return PAM_IGNORE;
}

EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_IGNORE;
}

EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *user = get_user(pamh);
	const void *tok = NULL;
	struct options o;
	int status;

	parse_options(pamh, argc, argv, &o);
	if (user == NULL || !has_home(user))
		return PAM_IGNORE;
	if (pam_get_data(pamh, DATA_AUTHTOK, &tok) != PAM_SUCCESS || tok == NULL)
		if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS)
			tok = NULL;
	{
		const char *secrets[] = {tok};
		status = run(pamh, &o, "open", user, secrets, 1, !(flags & PAM_SILENT));
	}
	/* The password is not needed any more: wipe our copy now. */
	pam_set_data(pamh, DATA_AUTHTOK, NULL, NULL);
	return status == 0 ? PAM_SUCCESS : PAM_SESSION_ERR;
}

EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *user = get_user(pamh);
	struct options o;

	(void)flags;
	parse_options(pamh, argc, argv, &o);
	if (user == NULL || !has_home(user))
		return PAM_IGNORE;
	/* Never talk to the user here: the session is over. */
	return run(pamh, &o, "close", user, NULL, 0, 0) == 0 ? PAM_SUCCESS : PAM_SESSION_ERR;
}

EXPORT int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const char *user = get_user(pamh);
	const void *old = NULL, *new = NULL;
	struct options o;

	parse_options(pamh, argc, argv, &o);
	if (!(flags & PAM_UPDATE_AUTHTOK) || user == NULL || !has_home(user))
		return PAM_IGNORE;
	if (pam_get_item(pamh, PAM_AUTHTOK, &new) != PAM_SUCCESS || new == NULL)
		return PAM_IGNORE;
	if (pam_get_item(pamh, PAM_OLDAUTHTOK, &old) != PAM_SUCCESS)
		old = NULL;
	{
		const char *secrets[] = {old, new};
		int status = run(pamh, &o, "passwd", user, secrets, 2, !(flags & PAM_SILENT));
		return status == 0 ? PAM_SUCCESS : PAM_AUTHTOK_ERR;
	}
}
