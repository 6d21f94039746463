/* SPDX-License-Identifier: MIT */
/*
 * lazy_uffd.so: a CRIU plugin, also usable as an LD_PRELOAD for any criu command.
 *
 * Contract (grows with issue 4):
 *  - Loads into CRIU 4.1 and 4.2 (built against 4.1's plugin header, 12 hooks).
 *  - init() succeeds for every stage and changes nothing yet; it logs one info line
 *    through CRIU's print_on_level so a user can see it was loaded.
 *  - Later: when the userfaultfd(2) syscall is refused with EPERM or ENOSYS, CRIU's uffds
 *    are made through /dev/userfaultfd instead (LAZY_UFFD_MODE=auto|device|syscall).
 */
#ifndef LAZY_UFFD_PLUGIN_H
#define LAZY_UFFD_PLUGIN_H

#define LAZY_UFFD_PLUGIN_NAME "lazy_uffd"

#endif
