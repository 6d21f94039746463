// SPDX-License-Identifier: MIT
/*
 * The criu executable's GOT: find the slots through which it calls an imported
 * function, and store a new target in one.
 *
 * criu is linked without BIND_NOW, so its calls to libc go through PLT stubs that jump
 * through GOT slots (JUMP_SLOT relocations in DT_JMPREL). Code built with -fno-plt, or
 * taking a function's address, uses GLOB_DAT slots in DT_RELA instead: both are handled.
 * Only the main program is looked at: the calls we redirect are criu's own, not
 * those of the libraries it loads.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "plugin.h"

/* Plain names: ElfW() confuses clang-format. */
typedef ElfW(Addr) elf_addr;
typedef ElfW(Dyn) elf_dyn;
typedef ElfW(Phdr) elf_phdr;
typedef ElfW(Rela) elf_rela;
typedef ElfW(Sym) elf_sym;

struct main_prog {
	elf_addr base;
	const elf_dyn *dyn;
	uintptr_t relro_start; /* the pages ld.so made read-only after relocating */
	uintptr_t relro_end;
	int found;
};

static int find_main(struct dl_phdr_info *info, size_t size, void *data)
{
	struct main_prog *mp = data;
	uintptr_t page = sysconf(_SC_PAGESIZE);
	int i;

	/* The first object dl_iterate_phdr() reports is the main program. */
	mp->base = info->dlpi_addr;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const elf_phdr *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_DYNAMIC)
			mp->dyn = (const elf_dyn *)start;
		if (ph->p_type == PT_GNU_RELRO) {
			/* ld.so protects whole pages: the partial last page stays writable. */
			mp->relro_start = start & ~(page - 1);
			mp->relro_end = (start + ph->p_memsz) & ~(page - 1);
		}
	}
	mp->found = 1;
	return 1;
}

/*
 * A d_ptr from the dynamic section as an address. glibc adds the load base to these
 * in place when the section is writable, and leaves them alone when it is read-only:
 * an unrelocated value of a PIE is below its base.
 */
static uintptr_t dyn_addr(const struct main_prog *mp, elf_addr v)
{
	return v < mp->base ? mp->base + v : v;
}

struct rel_table {
	const elf_rela *rela;
	size_t size;
};

int got_find(const char *name, struct got_slot *slots, int max)
{
	struct main_prog mp = {0};
	const elf_sym *symtab = NULL;
	const char *strtab = NULL;
	size_t strsz = 0;
	struct rel_table tabs[2] = {{0}};
	const elf_dyn *d;
	int nr = 0, t;

	dl_iterate_phdr(find_main, &mp);
	if (!mp.found || !mp.dyn)
		return -ENOENT;

	for (d = mp.dyn; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB:
			symtab = (const elf_sym *)dyn_addr(&mp, d->d_un.d_ptr);
			break;
		case DT_STRTAB:
			strtab = (const char *)dyn_addr(&mp, d->d_un.d_ptr);
			break;
		case DT_STRSZ:
			strsz = d->d_un.d_val;
			break;
		case DT_JMPREL:
			tabs[0].rela = (const elf_rela *)dyn_addr(&mp, d->d_un.d_ptr);
			break;
		case DT_PLTRELSZ:
			tabs[0].size = d->d_un.d_val;
			break;
		case DT_PLTREL:
			/* x86_64 uses RELA only; a REL table would be misread below. */
			if (d->d_un.d_val != DT_RELA)
				return -ENOEXEC;
			break;
		case DT_RELA:
			tabs[1].rela = (const elf_rela *)dyn_addr(&mp, d->d_un.d_ptr);
			break;
		case DT_RELASZ:
			tabs[1].size = d->d_un.d_val;
			break;
		}
	}
	if (!symtab || !strtab)
		return -ENOEXEC;

	for (t = 0; t < 2; t++) {
		size_t i, n = tabs[t].rela ? tabs[t].size / sizeof(elf_rela) : 0;

		for (i = 0; i < n; i++) {
			const elf_rela *r = &tabs[t].rela[i];
			unsigned long type = ELF64_R_TYPE(r->r_info);
			const elf_sym *sym;
			uintptr_t addr;

			if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
				continue;
			sym = &symtab[ELF64_R_SYM(r->r_info)];
			if (!sym->st_name || (strsz && sym->st_name >= strsz) || strcmp(strtab + sym->st_name, name))
				continue;
			/* Only an import: a function criu defines itself is called directly. */
			if (sym->st_shndx != SHN_UNDEF)
				continue;
			if (nr >= max)
				return -E2BIG;
			addr = mp.base + r->r_offset;
			slots[nr].addr = (void **)addr;
			slots[nr].jump_slot = type == R_X86_64_JUMP_SLOT;
			slots[nr].relro = addr >= mp.relro_start && addr < mp.relro_end;
			nr++;
		}
	}
	return nr;
}

int got_write(const struct got_slot *slot, void *val)
{
	uintptr_t page = sysconf(_SC_PAGESIZE);
	void *start = (void *)((uintptr_t)slot->addr & ~(page - 1));

	/* RELRO (or BIND_NOW) left the page read-only: open it for this one store. */
	if (slot->relro && mprotect(start, page, PROT_READ | PROT_WRITE))
		return -errno;
	__atomic_store_n(slot->addr, val, __ATOMIC_SEQ_CST);
	if (slot->relro && mprotect(start, page, PROT_READ))
		return -errno;
	return 0;
}
