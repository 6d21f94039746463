/* SPDX-License-Identifier: MIT */
/*
 * Serving one restore: from the first uffd to the last page, or a failure that takes
 * the restored tree down (SIGKILL) rather than let a task run on with zeros. The loop
 * and its parts (loop.h) are behind this one call.
 */
#ifndef LAZY_UFFD_SERVE_H
#define LAZY_UFFD_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "crimg.h"
#include "profile.h"
#include "remote.h"

struct daemon_opts {
	const char *stats_file; /* --stats: JSON written at exit ("-": stdout only), or NULL */
	/* --busy-poll: after a fault, poll the uffds this long before sleeping in epoll. */
	uint64_t busy_poll_ns;
	unsigned int copy_threads; /* --copy-threads: 0, or 1 thread copying background runs */
	int loop_cpu;		   /* --loop-cpu: pin the loop thread alone there, or -1 */
	const char *record_profile; /* --record-profile: written at a successful exit */
	const struct profile *prefetch; /* --prefetch-profile, loaded, or NULL */
	uint64_t fingerprint;		/* profile_fingerprint() of the images */
	const struct remote_opts *remote; /* --page-server, or NULL: the local pages files */
	/* Called once lazy-pages.socket listens, before accepting: daemonize, report ready. */
	int (*ready)(void *arg);
	void *ready_arg;
};

/* Serve the restore of IMG until every task is complete or gone. Returns the exit status. */
int daemon_serve(const struct crimg *img, const struct daemon_opts *o);

#endif
