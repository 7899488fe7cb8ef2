package fastpath

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -type fuse_fastpath_ctx -type fuse_attr -type fp_attr -type fp_name_key -type fp_dentry -type fp_xattr -type fp_op_stats -type fp_settings -type fuse_entry_out -type fuse_attr_out -type fuse_fastpath_xattr_out fastpath fastpath.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3 -ffreestanding -I/usr/include/x86_64-linux-gnu -I../include
