// SPDX-License-Identifier: MIT
/*
 * bench-warm MIB: write one byte per page of MIB MiB of fresh anonymous memory, then
 * free it.
 *
 * On this VM, guest memory left free for more than about two seconds goes back to the
 * host, and the next first touches of it run at a quarter of the usual speed. Run
 * right before a restore, this brings the memory the restored process is about to get
 * back into the guest, so every configuration starts from the same state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t len, off;
	char *p;

	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: bench-warm MIB\n");
		return 2;
	}
	len = (size_t)atol(argv[1]) << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("bench-warm: mmap");
		return 1;
	}
	for (off = 0; off < len; off += 4096)
		p[off] = 1;
	munmap(p, len);
	return 0;
}
