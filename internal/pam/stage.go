package pam

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cryptfs/cryptfs/crypt"
	"github.com/cryptfs/cryptfs/internal/home"
)

// Stages are the stages Run knows, with the number of secrets each reads
// from standard input.
var Stages = map[string]int{"open": 1, "close": 0, "passwd": 2}

// Run runs one stage for user: secrets come from in, messages go to out
// as "LEVEL MESSAGE" lines (and to the home's log). It returns the exit
// status: 0 on success, 1 on a failure it logged, 2 on misuse.
func Run(stage, user string, in io.Reader, out io.Writer, exe string) int {
	n, ok := Stages[stage]
	if !ok {
		fmt.Fprintf(out, "%s unknown stage %q (open, close or passwd)\n", home.Error, stage)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(out, "%s cryptfs pam %s must run as root (it is run by the PAM module pam_cryptfs)\n", home.Error, stage)
		return 2
	}
	log := NewLogger(out, user, stage)
	if !home.ValidUser(user) {
		log(home.Error, fmt.Sprintf("%q is not a user name cryptfs accepts", user))
		return 2
	}
	secrets, err := home.ReadSecrets(in, n)
	if err != nil {
		log(home.Error, "reading the passwords from the PAM module: "+err.Error())
		return 1
	}
	defer func() {
		for _, s := range secrets {
			crypt.Wipe(s)
		}
	}()
	o := home.SessionOptions{Log: log, Exe: exe}
	switch stage {
	case "open":
		err = home.OpenSession(user, secrets[0], o)
	case "close":
		err = home.CloseSession(user, o)
	case "passwd":
		err = home.ChangePassword(user, secrets[0], secrets[1], o)
	}
	if err != nil {
		return 1
	}
	return 0
}

// NewLogger returns a home.Logger that writes "LEVEL MESSAGE" lines to out
// and appends them, with the time and the stage, to user's home log. A
// message is kept to one line.
func NewLogger(out io.Writer, user, stage string) home.Logger {
	var mu sync.Mutex
	var logf *os.File
	if u, err := home.LookupUser(user); err == nil {
		if _, err := home.Load(user); err == nil {
			logf, _ = home.OpenLog(u.UID)
		}
	}
	return func(level home.Level, msg string) {
		msg = strings.ReplaceAll(msg, "\n", " ")
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%s %s\n", level, msg)
		if logf != nil {
			fmt.Fprintf(logf, "%s pam %s: %s %s\n", time.Now().Format(time.RFC3339), stage, level, msg)
		}
	}
}
