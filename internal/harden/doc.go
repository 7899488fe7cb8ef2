// Package harden keeps keys out of core dumps, swap and other processes'
// reach, as far as a Go process can.
//
//   - Process makes the process non-dumpable (prctl PR_SET_DUMPABLE 0: no
//     core dump, no ptrace attach or /proc/PID/mem by the same user, the
//     /proc/PID files owned by root) and sets RLIMIT_CORE to 0. The daemon
//     and every command that holds a key call it first.
//   - Locked is memory for keys outside the Go heap: its own pages from
//     mmap, locked in RAM (mlock: never written to swap) where
//     RLIMIT_MEMLOCK allows, left out of core dumps (MADV_DONTDUMP) and
//     zeroed in a forked child (MADV_WIPEONFORK), and wiped and unmapped by
//     Close. The Go runtime never moves, copies or reuses it.
//   - NoSignals runs a function with every signal blocked on its thread,
//     so that no signal frame (the registers the kernel saves on the
//     thread's signal stack, never cleared) takes a snapshot of the keys
//     it has in registers.
//
// What it cannot do: keep copies that other code makes (x/crypto's and the
// standard library's internal state, values the compiler spills to
// goroutine stacks) out of the Go heap. Package crypt says which copies
// remain and how it wipes them; SECURITY.md lists them.
package harden
