/* SPDX-License-Identifier: MIT */
/*
 * Page data from a page server (--page-server), asynchronously: the loop asks (remote_get)
 * and a receiver thread per connection reads and checks the answers, which the loop takes
 * (remote_next) when remote_fd() is readable and gives back (remote_release). Reconnects,
 * --reconnect-timeout and the urgent channel for faults live behind this interface; the
 * loop sees only requests, answers, and a failure for good.
 */
#ifndef LAZY_UFFD_REMOTE_H
#define LAZY_UFFD_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crimg.h"
#include "proto.h"

struct lazy_task;

struct remote_opts {
	const char *address; /* NULL: loopback, as criu */
	int port;
	enum ps_layout layout; /* 0: from the images' pagemap encoding */
	double reconnect_timeout;
	bool single_connection; /* never open the urgent channel */
	unsigned int bulk_pages; /* pages per background request */
	unsigned int bulk_depth; /* background requests in flight */
	unsigned int bulk_depth_shared; /* the same while faults share the one connection */
	struct tls_opts tls;
	int ps_socket; /* --ps-socket: the main connection, made by our caller; or -1 */
};

/* One GET: asked by the loop, answered (got pages at data) by the receiver. */
struct ps_req {
	pid_t vpid;
	uint64_t img_addr; /* dump-time address */
	uint64_t nr_pages;
	bool urgent; /* for a fault */
	uint64_t got; /* pages in the answer (1 <= got <= nr_pages) */
	const uint8_t *data;
	/* The loop's: the first fault that waits for it, for the latency figures. */
	struct lazy_task *fault_task;
	uint64_t fault_ns;
};

struct remote_stats {
	uint64_t requests, urgent_requests, pages, reconnects;
	uint64_t dup_pages; /* received, but no task wanted them any more */
	bool urgent_channel, tls;
	enum ps_layout layout;
};

struct remote;

/* Connect (within the reconnect timeout); no thread yet, so the daemon may still fork. */
int remote_open(struct remote **out, const struct crimg *img, const struct remote_opts *o);
/* Start receiving (the receiver thread). */
int remote_start(struct remote *r);
/* CLEAN: say CLOSE and wait for the server's status; else just drop the connections. */
void remote_close(struct remote *r, bool clean);
/* Readable (eventfd) when answers wait or the source failed. */
int remote_fd(const struct remote *r);
/* Ask for NR pages at IMG_ADDR of task VPID; -EBUSY when no buffer is free. */
int remote_get(struct remote *r, pid_t vpid, uint64_t img_addr, uint64_t nr, bool urgent, struct ps_req **out);
/* A request not yet released covering the page (URGENT_ONLY: a fault's request). */
struct ps_req *remote_find(struct remote *r, pid_t vpid, uint64_t img_addr, bool urgent_only);
/* Is a background request possible now? */
bool remote_bulk_slot(struct remote *r);
unsigned int remote_bulk_pages(const struct remote *r);
/* Is the urgent channel (second connection, our page server only) in use? */
bool remote_has_urgent(struct remote *r);
/* 1 and *out: an answer; 0: none now; -EIO: the source failed for good (logged). */
int remote_next(struct remote *r, struct ps_req **out);
/* The loop is done with an answer's data. */
void remote_release(struct remote *r, struct ps_req *q);
/* Requests not yet answered, and the first few of them in words. */
size_t remote_describe_inflight(const struct remote *r, char *buf, size_t len);
const char *remote_peer(const struct remote *r);
void remote_get_stats(struct remote *r, struct remote_stats *st);
/*
 * The calling thread carries only faults' pages (the urgent channel, at either end): a
 * nice value 10 better than it has, so that on a CPU shared with the background
 * transfer its few us of work do not wait behind a 1 MiB answer being sent or copied.
 * Needs CAP_SYS_NICE; without it nothing changes, and WHO says so at info level.
 */
void urgent_thread_priority(const char *who);

#endif
