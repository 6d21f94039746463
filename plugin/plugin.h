/* SPDX-License-Identifier: MIT */
/*
 * lazy_uffd.so: a CRIU plugin, also usable as an LD_PRELOAD for any criu command, that
 * makes CRIU create its userfaultfds through /dev/userfaultfd when the userfaultfd(2)
 * syscall is refused (EPERM from a seccomp profile or the sysctl, ENOSYS).
 *
 * Contract:
 *  - Loads into CRIU 4.1 and 4.2 (built against 4.1's plugin header, 12 hooks) with
 *    `criu -L DIR`, CRIU_LIBS_DIR or /usr/lib/criu; exports only CR_PLUGIN_DESC.
 *  - CRIU calls syscall(SYS_userfaultfd) and ioctl(UFFDIO_API) through GOT slots of its
 *    executable. For a restore (plugin init, stage RESTORE) and for every command when
 *    preloaded (from the library constructor, so CRIU's startup probe is covered too),
 *    those slots point at our wrappers; the plugin puts the originals back at exit.
 *    Every other syscall and ioctl is passed through untouched.
 *  - userfaultfd(2) is tried first; on EPERM or ENOSYS the uffd is made through the
 *    device, in the calling process (a restored task: the uffd binds to its mm), with the
 *    flags CRIU gave. The plugin opens the device at init in criu's own mount namespace
 *    and keeps it in CRIU's fdstore (restored tasks close every other fd, and may live in
 *    a mount namespace without the device): directly with fdstore_add() when the fdstore
 *    is already up (CRIU 4.2), else through CRIU's inherit-fd list, which CRIU moves into
 *    the fdstore right after creating it (CRIU 4.1). Without the plugin stage (preload
 *    only) a task opens the device itself.
 *  - When CRIU's startup probe found no userfaultfd it asks the handshake of each task's
 *    uffd for no features; for device-made uffds the plugin asks for EVENT_FORK,
 *    EVENT_REMAP, EVENT_REMOVE and EVENT_UNMAP as far as the kernel offers them. Without
 *    EVENT_FORK (no CAP_SYS_PTRACE, or an old kernel) a process forked after the restore
 *    would lose its lazy pages: the restore is refused unless
 *    LAZY_UFFD_ALLOW_NO_FORK_EVENT=1.
 *  - When neither path works, `criu restore --lazy-pages` fails in plugin init, before
 *    any task exists, with one error naming the cause and the fix.
 *  - Settings (environment of criu): LAZY_UFFD_MODE=auto (default: syscall first, device
 *    on EPERM/ENOSYS) | device (always the device) | syscall (the plugin does nothing);
 *    LAZY_UFFD_ALLOW_NO_FORK_EVENT=1; LAZY_UFFD_DEVICE=PATH (default /dev/userfaultfd).
 *  - Messages go to CRIU's log through print_on_level at CRIU's levels, prefixed
 *    "lazy_uffd: "; one info line per uffd says which path made it and what it got.
 *
 * The rest of this header is internal to plugin/ (got.c, redirect.c, plugin.c).
 */
#ifndef LAZY_UFFD_PLUGIN_H
#define LAZY_UFFD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LAZY_UFFD_PLUGIN_NAME "lazy_uffd"

/* CRIU's log levels, as print_on_level() takes them. */
enum {
	LU_LOG_MSG = 0,
	LU_LOG_ERROR = 1,
	LU_LOG_WARN = 2,
	LU_LOG_INFO = 3,
	LU_LOG_DEBUG = 4,
};

void lu_log(unsigned int level, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define lu_err(fmt, ...)   lu_log(LU_LOG_ERROR, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define lu_warn(fmt, ...)  lu_log(LU_LOG_WARN, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define lu_info(fmt, ...)  lu_log(LU_LOG_INFO, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define lu_debug(fmt, ...) lu_log(LU_LOG_DEBUG, __FILE__, __LINE__, fmt, ##__VA_ARGS__)

/* got.c: slots of the criu executable's GOT bound to an imported function. */
struct got_slot {
	void **addr;
	bool jump_slot; /* JUMP_SLOT (PLT) rather than GLOB_DAT */
	bool relro;	/* on a page RELRO made read-only */
};

/* Fill @slots with the slots bound to @name (at most @max): the count, or -errno. */
int got_find(const char *name, struct got_slot *slots, int max);

/* Store @val in a slot, opening a read-only page for the store. 0 or -errno. */
int got_write(const struct got_slot *slot, void *val);

/*
 * The architecture whose relocations got.c matches ("x86_64", "aarch64"), NULL when this
 * build supports none (got_find and got_scan then fail with -ENOSYS); its ELF e_machine.
 */
const char *got_arch(void);
int got_machine(void);

/*
 * An ELF object as got_scan reads it: the loaded criu, or a file (test/tools/got-scan).
 * Addresses are the object's link-time ones; d_ptr values at or above a non-zero @base
 * are taken as already relocated by ld.so.
 */
struct got_view {
	uint64_t base;
	uint64_t dyn; /* the dynamic section, and its size in bytes */
	uint64_t dyn_size;
	/* @len readable bytes at address @vaddr, or NULL when the object has none there */
	const void *(*at)(const struct got_view *v, uint64_t vaddr, size_t len);
	void *priv;
};

struct got_match {
	uint64_t vaddr; /* the slot's link-time address (the relocation's r_offset) */
	bool jump_slot;
};

/* The slots bound to the import @name, in JMPREL then RELA order: the count, or -errno. */
int got_scan(const struct got_view *v, const char *name, struct got_match *out, int max);

/* redirect.c: the wrappers and what they share with plugin.c. */
enum lu_mode {
	LU_MODE_AUTO,
	LU_MODE_DEVICE,
	LU_MODE_SYSCALL,
};

/* How a restored task finds the device fd the plugin opened at init. */
enum lu_keep {
	LU_KEEP_NONE,	 /* open the device in the task */
	LU_KEEP_FDSTORE, /* fdstore_get(keep_id) */
	LU_KEEP_INHERIT, /* inherit_fd_lookup_id(keep_key) */
};

struct lu_state {
	enum lu_mode mode;
	bool allow_no_fork;
	const char *device;
	bool installed;	 /* criu's slots point at our wrappers */
	bool by_preload; /* installed by the constructor: stays to the end */
	bool restore;	 /* plugin init ran for a restore (tasks follow) */
	pid_t master;	 /* the criu process that ran plugin init */
	enum lu_keep keep;
	int keep_id;
	char keep_key[64];
	uint64_t dev_features; /* what the device path offers (probed at init) */
	bool dev_probed;
};

extern struct lu_state lu;

/* Read LAZY_UFFD_MODE etc. into @lu. -EINVAL on a bad value (logged if @report). */
int lu_read_settings(bool report);

/* Point criu's syscall and ioctl slots at the wrappers / back. 0 or -errno (logged). */
int redirect_install(void);
void redirect_uninstall(void);

/* Whether another copy of this library already owns criu's slots; its descriptor. */
void *redirect_owner_desc(void);

#endif
