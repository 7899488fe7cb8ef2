package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cryptfs/cryptfs/internal/control"
)

// TestHomePAMTransportAndPoll: a home mounted at login gets the transport
// and polling of cryptfs mount: by default --transport=auto and
// --poll=auto (it used to be served over /dev/fuse whatever the kernel
// offered, as if --transport=dev had been asked for), and the registry's
// transport and poll keys when set.
func TestHomePAMTransportAndPoll(t *testing.T) {
	homeTools(t)
	service, bin := pamService(t)
	u := newTestUser(t)
	fillHome(t, u)
	migrateHome(t, bin, u)

	status := func() control.Status {
		t.Helper()
		out, err := exec.Command(bin, "status", "--json", u.Home).Output()
		if err != nil {
			t.Fatalf("cryptfs status %s: %v\n%s", u.Home, err, homeLog(u))
		}
		var st control.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("cryptfs status --json: %v\n%s", err, out)
		}
		return st
	}

	login(t, service, u, u.Password)
	st := status()
	if !strings.HasPrefix(st.TransportReason, "auto") {
		t.Errorf("a home without transport in its registry entry runs %q (%s), want what --transport=auto chose", st.Transport, st.TransportReason)
	}
	if st.Transport == "dev" && st.Poll != "off" {
		t.Errorf("a home without poll in its registry entry polls: %q (%s), want --poll=auto (off)", st.Poll, st.TransportReason)
	}
	logout(t, service, u)

	entry := "/etc/cryptfs/home/" + u.Name + ".conf"
	old, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(entry, append(old, "transport = dev\npoll = adaptive\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	login(t, service, u, u.Password)
	st = status()
	if st.Transport != "dev" || st.TransportReason != "requested, adaptive polling (adaptive)" || st.Poll != "adaptive" {
		t.Errorf("with transport = dev and poll = adaptive the home runs %q (%s), poll %q", st.Transport, st.TransportReason, st.Poll)
	}
	if out, err := asUser(u, "ls "+u.Home+"/Documents"); err != nil {
		t.Errorf("the polling home does not answer: %v: %s", err, out)
	}
	logout(t, service, u)
}
