package reqstats

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -type rs_inflight -type rs_op_stats reqstats reqstats.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3 -ffreestanding -I/usr/include/x86_64-linux-gnu -I../include
