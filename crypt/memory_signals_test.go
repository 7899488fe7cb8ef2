package crypt

import (
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The signal-frame test: the kernel saves a thread's registers, vector
// registers included, on its signal stack when a signal arrives, and
// nothing clears that frame afterwards. A key that is in registers at that
// moment (blake2b.New copies its key through XMM0 and XMM1) stays behind
// in the frame until the thread's next signal. The daemon's threads get
// SIGURG from the Go scheduler all the time; the test makes that
// deterministic enough to fail: many threads encrypt and decrypt names
// and xattr names while another goroutine signals every one of them,
// then the signals stop and the child stops itself, so that each thread's
// last frame is a snapshot taken somewhere inside a name operation.

const memSignalsChildEnv = "CRYPT_MEMORY_SIGNALS_TEST_MASTER"

const (
	signalWorkers = 16
	signalStorm   = 300 * time.Millisecond
)

func memSignalsChild(masterHex string) int {
	master, err := hex.DecodeString(masterHex)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	s, err := New(master, Options{})
	Wipe(master)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var stop atomic.Bool
	var failed atomic.Value
	tids := make(chan int, signalWorkers)
	var done sync.WaitGroup
	park := make(chan struct{})
	for w := range signalWorkers {
		done.Add(1)
		go func() {
			runtime.LockOSThread() // the thread, and its signal stack, stay ours
			tids <- unix.Gettid()
			iv := DirIV{byte(w), 2, 3}
			for i := 0; !stop.Load(); i++ {
				name := fmt.Sprintf("file-%d-%d", w, i)
				enc, err := s.EncryptName(iv, name)
				if err == nil {
					_, err = s.DecryptName(iv, enc)
				}
				if err == nil {
					_, errs := s.DecryptNames(iv, []string{enc, enc})
					err = errs[1]
				}
				if err == nil {
					enc, err = s.EncryptXattrName("user." + name)
				}
				if err == nil {
					_, err = s.DecryptXattrName(enc)
				}
				if err != nil {
					failed.Store(err.Error())
					break
				}
			}
			done.Done()
			<-park // keep the thread: its signal stack is what we look at
		}()
	}
	var ids []int
	for range signalWorkers {
		ids = append(ids, <-tids)
	}
	pid := os.Getpid()
	for end := time.Now().Add(signalStorm); time.Now().Before(end); {
		for _, tid := range ids {
			unix.Tgkill(pid, tid, unix.SIGURG)
		}
	}
	stop.Store(true)
	done.Wait()
	if e := failed.Load(); e != nil {
		fmt.Println("error", e)
		return 1
	}
	fmt.Println("used")
	syscall.Kill(pid, syscall.SIGSTOP)
	close(park)
	s.Wipe()
	return 0
}

// TestNameKeysNotInSignalFrames: while threads that are being signalled
// encrypt and decrypt names and xattr names, the name subkeys stay in
// the keyring only: none is left in a signal frame. Three children, each
// with 16 signalled threads.
func TestNameKeysNotInSignalFrames(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (a second of signal storms in child processes)")
	}
	master := make([]byte, KeyLen)
	for i := range master {
		master[i] = byte(0xa5 ^ i*11)
	}
	watched := []string{purposeNameSIV, purposeNameEnc, purposeXattrNameSIV, purposeXattrNameEnc}
	var needles [][]byte
	for _, p := range watched {
		k, err := DeriveSubkey(master, p)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, k)
	}
	for i := range 3 {
		child := startMemChild(t, memSignalsChildEnv, master)
		child.await("used")
		count := make([]int, len(needles))
		var outside []string
		for _, h := range child.find(needles) {
			count[h.Needle]++
			if !h.Mapping.HasFlag("dd") {
				outside = append(outside, fmt.Sprintf("%s at %#x in %q", watched[h.Needle], h.Addr, h.Mapping.Path))
			}
		}
		if len(outside) > 0 {
			t.Errorf("child %d: name subkeys outside the keyring: %s", i, strings.Join(outside, "; "))
		}
		for j, n := range count {
			if n != 1 {
				t.Errorf("child %d: %s found %d times, want once (in the keyring)", i, watched[j], n)
			}
		}
		child.resume()
		child.wait()
	}
}
