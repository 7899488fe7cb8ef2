package control

import (
	"testing"
)

// FuzzHandle: any bytes a client sends get no answer, an error, or the
// handler's reply for exactly "status" and "stats"; nothing panics.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{`{"cmd":"status"}`, `{"cmd":"stats"}`, `{"cmd":"x"}`, `{"cmd":1}`, `[]`, "", `{"cmd":"status","cmd":"stats"}`} {
		f.Add([]byte(s + "\n"))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h := &fakeHandler{}
		reply := handle(line, h)
		switch r := reply.(type) {
		case nil, map[string]string:
			if h.calls.Load() != 0 {
				t.Errorf("the handler ran for %q but the reply is %v", line, r)
			}
		case Status, Stats:
			if h.calls.Load() != 1 {
				t.Errorf("%d handler calls for %q", h.calls.Load(), line)
			}
		default:
			t.Errorf("reply %T for %q", reply, line)
		}
	})
}
