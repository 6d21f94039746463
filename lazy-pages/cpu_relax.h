/* SPDX-License-Identifier: MIT */
/*
 * cpu_relax(): the body of a busy-wait loop. It tells the CPU that the thread spins (so
 * a sibling hyperthread gets the core, and the loop does not flood the memory system),
 * and it is a compiler barrier: the condition the loop tests is read again each time.
 *
 * Callers bound their spin by a count of iterations calibrated as a duration, so each
 * architecture's instruction is chosen to take some tens of cycles:
 *  - x86_64: PAUSE.
 *  - aarch64: ISB, not YIELD: YIELD is a no-op on most cores and would make the same
 *    count of iterations spin many times shorter.
 *  - anything else: the compiler barrier alone.
 */
#ifndef LAZY_UFFD_CPU_RELAX_H
#define LAZY_UFFD_CPU_RELAX_H

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
	__asm__ __volatile__("isb" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif
