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
 *
 * The matching (got_scan) reads the object only through a view, so that the same code
 * runs on the loaded criu (got_find) and on an executable read from a file
 * (test/tools/got-scan, which checks it against other architectures' criu binaries).
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
typedef ElfW(Dyn) elf_dyn;
typedef ElfW(Phdr) elf_phdr;
typedef ElfW(Rela) elf_rela;
typedef ElfW(Sym) elf_sym;

#if __ELF_NATIVE_CLASS == 64
#define REL_TYPE(info) ELF64_R_TYPE(info)
#define REL_SYM(info)  ELF64_R_SYM(info)
#else
#define REL_TYPE(info) ELF32_R_TYPE(info)
#define REL_SYM(info)  ELF32_R_SYM(info)
#endif

/* The relocations that bind a GOT slot to an imported function, per architecture. */
#if defined(__x86_64__)
#define GOT_ARCH      "x86_64"
#define GOT_MACHINE   EM_X86_64
#define GOT_JUMP_SLOT R_X86_64_JUMP_SLOT
#define GOT_GLOB_DAT  R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define GOT_ARCH      "aarch64"
#define GOT_MACHINE   EM_AARCH64
#define GOT_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define GOT_GLOB_DAT  R_AARCH64_GLOB_DAT
#else
/* Builds, and got_arch() tells the plugin to refuse. */
#define GOT_ARCH    NULL
#define GOT_MACHINE EM_NONE
#endif

const char *got_arch(void)
{
	return GOT_ARCH;
}

int got_machine(void)
{
	return GOT_MACHINE;
}

#ifdef GOT_JUMP_SLOT
/* Whether relocation @type binds a slot to a symbol; *@jump_slot tells which kind. */
static bool got_reloc(unsigned long type, bool *jump_slot)
{
	*jump_slot = type == GOT_JUMP_SLOT;
	return type == GOT_JUMP_SLOT || type == GOT_GLOB_DAT;
}
#else
static bool got_reloc(unsigned long type, bool *jump_slot)
{
	return false;
}
#endif

/*
 * A d_ptr from the dynamic section as a link-time address. glibc adds the load base to
 * these in place when the section is writable, and leaves them alone when it is
 * read-only: an unrelocated value of a PIE is below its base. A file's view has base 0.
 */
static uint64_t dyn_vaddr(const struct got_view *v, uint64_t p)
{
	return v->base && p >= v->base ? p - v->base : p;
}

struct rel_table {
	uint64_t vaddr;
	uint64_t size;
};

/* The name of symbol @idx, NULL when it is nameless or out of the tables. */
static const char *sym_name(const struct got_view *v, uint64_t symtab, const char *strtab, uint64_t strsz,
			    unsigned long idx, const elf_sym **symp)
{
	const elf_sym *sym = v->at(v, symtab + idx * sizeof(elf_sym), sizeof(elf_sym));

	*symp = sym;
	if (!sym || !sym->st_name || sym->st_name >= strsz || !memchr(strtab + sym->st_name, 0, strsz - sym->st_name))
		return NULL;
	return strtab + sym->st_name;
}

int got_scan(const struct got_view *v, const char *name, struct got_match *out, int max)
{
	uint64_t symtab = 0, strtab_at = 0, strsz = 0;
	struct rel_table tabs[2] = {{0}};
	bool have_symtab = false, have_strtab = false;
	const elf_dyn *dyn;
	const char *strtab;
	size_t d, nd;
	int nr = 0, t;

	if (!GOT_ARCH)
		return -ENOSYS;
	dyn = v->at(v, v->dyn, v->dyn_size);
	if (!dyn)
		return -ENOEXEC;
	nd = v->dyn_size / sizeof(elf_dyn);
	for (d = 0; d < nd && dyn[d].d_tag != DT_NULL; d++) {
		uint64_t p = dyn[d].d_un.d_ptr, val = dyn[d].d_un.d_val;

		switch (dyn[d].d_tag) {
		case DT_SYMTAB:
			symtab = dyn_vaddr(v, p);
			have_symtab = true;
			break;
		case DT_STRTAB:
			strtab_at = dyn_vaddr(v, p);
			have_strtab = true;
			break;
		case DT_STRSZ:
			strsz = val;
			break;
		case DT_JMPREL:
			tabs[0].vaddr = dyn_vaddr(v, p);
			break;
		case DT_PLTRELSZ:
			tabs[0].size = val;
			break;
		case DT_PLTREL:
			/* x86_64 and aarch64 use RELA only; a REL table would be misread below. */
			if (val != DT_RELA)
				return -ENOEXEC;
			break;
		case DT_RELA:
			tabs[1].vaddr = dyn_vaddr(v, p);
			break;
		case DT_RELASZ:
			tabs[1].size = val;
			break;
		}
	}
	if (!have_symtab || !have_strtab || !strsz)
		return -ENOEXEC;
	strtab = v->at(v, strtab_at, strsz);
	if (!strtab)
		return -ENOEXEC;

	for (t = 0; t < 2; t++) {
		const elf_rela *rela;
		size_t i, n;

		if (!tabs[t].vaddr || !tabs[t].size)
			continue;
		rela = v->at(v, tabs[t].vaddr, tabs[t].size);
		if (!rela)
			return -ENOEXEC;
		n = tabs[t].size / sizeof(elf_rela);
		for (i = 0; i < n; i++) {
			const elf_rela *r = &rela[i];
			const elf_sym *sym;
			const char *sname;
			bool jump_slot;

			if (!got_reloc(REL_TYPE(r->r_info), &jump_slot))
				continue;
			sname = sym_name(v, symtab, strtab, strsz, REL_SYM(r->r_info), &sym);
			if (!sname || strcmp(sname, name))
				continue;
			/* Only an import: a function criu defines itself is called directly. */
			if (sym->st_shndx != SHN_UNDEF)
				continue;
			if (nr >= max)
				return -E2BIG;
			out[nr].vaddr = r->r_offset;
			out[nr].jump_slot = jump_slot;
			nr++;
		}
	}
	return nr;
}

/* The loaded main program: its memory is its view, at its load base. */
struct main_prog {
	struct got_view view;
	uintptr_t relro_start; /* the pages ld.so made read-only after relocating */
	uintptr_t relro_end;
	int found;
};

static const void *main_at(const struct got_view *v, uint64_t vaddr, size_t len)
{
	return (const void *)(uintptr_t)(v->base + vaddr);
}

static int find_main(struct dl_phdr_info *info, size_t size, void *data)
{
	struct main_prog *mp = data;
	uintptr_t page = sysconf(_SC_PAGESIZE);
	int i;

	/* The first object dl_iterate_phdr() reports is the main program. */
	mp->view.base = info->dlpi_addr;
	mp->view.at = main_at;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const elf_phdr *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_DYNAMIC) {
			mp->view.dyn = ph->p_vaddr;
			mp->view.dyn_size = ph->p_memsz;
		}
		if (ph->p_type == PT_GNU_RELRO) {
			/* ld.so protects whole pages: the partial last page stays writable. */
			mp->relro_start = start & ~(page - 1);
			mp->relro_end = (start + ph->p_memsz) & ~(page - 1);
		}
	}
	mp->found = 1;
	return 1;
}

int got_find(const char *name, struct got_slot *slots, int max)
{
	struct got_match m[16];
	struct main_prog mp = {0};
	int nr, i;

	dl_iterate_phdr(find_main, &mp);
	if (!mp.found || !mp.view.dyn_size)
		return -ENOENT;
	/* More than 16 slots for one function would be too many anyway. */
	nr = got_scan(&mp.view, name, m, max < 16 ? max : 16);
	for (i = 0; i < nr; i++) {
		uintptr_t addr = mp.view.base + m[i].vaddr;

		slots[i].addr = (void **)addr;
		slots[i].jump_slot = m[i].jump_slot;
		slots[i].relro = addr >= mp.relro_start && addr < mp.relro_end;
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
