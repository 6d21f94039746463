// SPDX-License-Identifier: MIT
/*
 * got-scan FILE SYMBOL...: the GOT slots through which the executable FILE calls each
 * imported SYMBOL, found by plugin/got.c's matcher (got_scan) reading the file instead
 * of a loaded program. One line per slot:
 *
 *   SYMBOL 0xADDR JUMP_SLOT|GLOB_DAT
 *
 * ADDR is the link-time address (readelf -r's Offset). FILE must be an executable of
 * the architecture this tool was built for (the plugin matches that one's relocations).
 * Exit 0 when every SYMBOL has a slot, 1 when one has none, 2 on an error (said on
 * stderr).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "plugin.h"

typedef ElfW(Ehdr) elf_ehdr;
typedef ElfW(Phdr) elf_phdr;

struct file_obj {
	const unsigned char *data;
	size_t size;
	const elf_phdr *phdr;
	int phnum;
};

/* got.c logs nothing, but plugin.h declares the logger. */
void lu_log(unsigned int level, const char *file, int line, const char *fmt, ...)
{
}

/* Link-time addresses to file bytes, through the PT_LOAD segments' file parts. */
static const void *file_at(const struct got_view *v, uint64_t vaddr, size_t len)
{
	const struct file_obj *f = v->priv;
	int i;

	for (i = 0; i < f->phnum; i++) {
		const elf_phdr *ph = &f->phdr[i];

		if (ph->p_type != PT_LOAD || vaddr < ph->p_vaddr || vaddr - ph->p_vaddr > ph->p_filesz ||
		    len > ph->p_filesz - (vaddr - ph->p_vaddr))
			continue;
		if (ph->p_offset > f->size || ph->p_filesz > f->size - ph->p_offset)
			return NULL;
		return f->data + ph->p_offset + (vaddr - ph->p_vaddr);
	}
	return NULL;
}

static int open_elf(const char *path, struct file_obj *f, struct got_view *v)
{
	const elf_ehdr *eh;
	struct stat st;
	void *map;
	int fd, i;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "got-scan: %s: %s\n", path, strerror(errno));
		return -1;
	}
	map = st.st_size ? mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
	close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, "got-scan: %s: cannot map it: %s\n", path, st.st_size ? strerror(errno) : "empty");
		return -1;
	}
	f->data = map;
	f->size = st.st_size;
	eh = map;
	if (f->size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG)) {
		fprintf(stderr, "got-scan: %s: not an ELF file\n", path);
		return -1;
	}
	if (eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    eh->e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB) ||
	    eh->e_machine != got_machine()) {
		fprintf(stderr, "got-scan: %s: ELF machine %u, class %u: this got-scan reads %s executables only\n",
			path, eh->e_machine, eh->e_ident[EI_CLASS], got_arch() ? got_arch() : "no");
		return -1;
	}
	if (eh->e_phentsize != sizeof(elf_phdr) || eh->e_phoff > f->size ||
	    (size_t)eh->e_phnum * sizeof(elf_phdr) > f->size - eh->e_phoff) {
		fprintf(stderr, "got-scan: %s: program headers out of the file\n", path);
		return -1;
	}
	f->phdr = (const elf_phdr *)(f->data + eh->e_phoff);
	f->phnum = eh->e_phnum;
	*v = (struct got_view){.at = file_at, .priv = f};
	for (i = 0; i < f->phnum; i++)
		if (f->phdr[i].p_type == PT_DYNAMIC) {
			v->dyn = f->phdr[i].p_vaddr;
			v->dyn_size = f->phdr[i].p_filesz;
		}
	if (!v->dyn_size) {
		fprintf(stderr, "got-scan: %s: no dynamic section (linked statically?)\n", path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct got_match m[16];
	struct file_obj f;
	struct got_view v;
	int i, j, nr, missing = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: got-scan FILE SYMBOL...\n");
		return 2;
	}
	if (open_elf(argv[1], &f, &v))
		return 2;
	for (i = 2; i < argc; i++) {
		nr = got_scan(&v, argv[i], m, 16);
		if (nr < 0) {
			fprintf(stderr, "got-scan: %s: %s: %s\n", argv[1], argv[i], strerror(-nr));
			return 2;
		}
		if (!nr) {
			fprintf(stderr, "got-scan: %s: no GOT slot for %s\n", argv[1], argv[i]);
			missing = 1;
		}
		for (j = 0; j < nr; j++)
			printf("%s 0x%llx %s\n", argv[i], (unsigned long long)m[j].vaddr,
			       m[j].jump_slot ? "JUMP_SLOT" : "GLOB_DAT");
	}
	return missing;
}
