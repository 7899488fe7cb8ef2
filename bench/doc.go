// Command cryptfs-bench measures cryptfs side by side with gocryptfs and
// the native lower directory, in one run: `make bench` (the full kernel
// tree, tens of minutes) and `make bench-quick` (a smaller tree and files,
// under three minutes, for iteration). Run it as root from the repository
// root after `make build`.
//
// # What it measures
//
// Systems: the native lower directory (ext4 under /var/tmp), gocryptfs
// with its default settings (its own -init), and cryptfs with
// --fast-path=off, kernel-cache and ebpf over /dev/fuse (--transport=dev;
// ebpf is reported "n/a" where the kernel lacks the cryptfs FUSE hook and
// the mount refuses the tier; all three with --poll=off), kernel-cache
// over /dev/fuse with adaptive polling (cryptfs-kernel-cache-poll,
// --poll=adaptive), and kernel-cache over FUSE over io_uring
// (cryptfs-kernel-cache-uring, --transport=uring: the run sets the fuse
// module's enable_uring and puts it back; "n/a" where the kernel has no
// FUSE over io_uring). The transports table compares the last two with
// plain /dev/fuse (cryptfs-kernel-cache) in the same run: time, daemon CPU
// and wakeups per request.
//
// Workloads, in this order (each leaves the state the next needs):
// streaming write with a final fsync; cold streaming read; 4 KiB random
// read and random write (fio, cold); untar of Debian's linux-source-6.1
// tree (decompressed once into /var/cache/cryptfs-bench; the quick mode
// uses a subset of it); stat of every entry, warm and cold; ls -lR (warm,
// hyperfine); cat of every file (cold); rm -rf of the tree; creating 10,000
// small files. "Cold" means sync, unmount, drop every cache (echo 3 >
// /proc/sys/vm/drop_caches) and mount again; "warm" means after one
// untimed warm-up run.
//
// For each workload and system: wall time (median of the repetitions;
// warm workloads run several times after a warm-up), throughput, ratio to
// native, FUSE requests per opcode that reached the daemon (cryptfs stats
// for cryptfs, the bpf/reqstats tracepoint collector for gocryptfs), and
// the daemon's CPU time (all threads, from /proc schedstat), its CPU time
// and thread wakeups (schedstat's count of times put on a CPU) per
// request, and peak RSS
// (VmHWM, reset through clear_refs before each repetition). With
// profiling on (the default in full mode), each cryptfs workload runs one
// more time, unmeasured, under `perf record -g`, converted to a pprof
// profile and summarised (where the daemon's time goes).
//
// Workloads run interleaved: every system runs a workload before the next
// workload starts, in an order rotated per workload, so drift in the load
// of this shared machine spreads over all systems. Each repetition records
// the load average it started under.
//
// # Output
//
// Under -out (bench/results): NAME.md (tables), NAME.png (bar chart of
// ratios to native, log scale), NAME.json (every repetition's raw
// figures), NAME-profiles.md and profiles/MODE/*.pb.gz, where NAME is
// bench or bench-quick. With -docs FILE the tables also replace the
// generated section of FILE (docs/performance.md).
//
// `cryptfs-bench compare OLD.json NEW.json` prints, per workload and cryptfs
// system, the requests that reached the daemon in two runs and the opcodes
// whose counts differ; it exits 1 when one differs beyond SETATTR (the
// writeback cache's timing-dependent mtime/ctime flushes) and run-to-run
// noise (one request or 0.1%). It checks that a refactoring kept the
// request counts (docs/testing.md, "Same requests after a refactoring").
//
// # Promises
//
// Every mount is unmounted and every scratch tree removed on exit, also on
// failure and on SIGINT/SIGTERM; a run killed outright is cleaned up by the
// next run (scratch trees are /var/tmp/cryptfs-bench.*; one run at a time,
// under a lock in the cache directory). A repetition that hangs past its
// timeout has its FUSE connection aborted. Timed code runs in child
// processes (the tools, or this binary's helpers), never in the process
// that holds the mounts, so a hung daemon cannot hang the benchmark. The
// repository is written only under -out and the -docs file. Missing tools
// (gocryptfs, fio, hyperfine, perf, the kernel source) are installed from
// Debian.
package main
