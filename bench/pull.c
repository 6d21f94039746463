// SPDX-License-Identifier: MIT
/*
 * bench-pull: fetch every lazy page of a dump from its page server and throw the bytes
 * away: how fast the source alone can hand out the memory, the floor under any lazy
 * restore's population from it.
 *
 *   bench-pull --images DIR --port PORT [--address A] [--pages N] [--depth N]
 *
 * DIR holds the dump's images (pstree, mm, pagemap: the copy a destination restores
 * from); the server is `criu dump --lazy-pages`, `criu page-server --lazy-pages` or
 * `lazy-uffd page-server`. The pages go through the daemon's own client (remote.h) on
 * one connection, --depth requests of --pages pages in flight (as the daemon's
 * background transfer on one connection: 2 of 1 MiB by default), in address order,
 * task by task. No uffd, no restore, no copy of the bytes: what is left is the
 * source's work, the wire and our receiver.
 *
 * Prints key=value lines: pages, requests, wall_s (connect to the CLOSE status), last_s
 * (connect to the last answer), gbs (pages over last_s), cpu_s (this process's).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lazy_pages.h"
#include "pagesize.h"
#include "remote.h"

/* A piece still to ask for: a lazy run of a task, or the rest of a short answer. */
struct piece {
	pid_t vpid;
	uint64_t addr, nr;
};

struct todo {
	struct piece *v;
	size_t n, cap;
};

static int todo_push(struct todo *t, pid_t vpid, uint64_t addr, uint64_t nr)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 256;
		struct piece *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = (struct piece){ vpid, addr, nr };
	return 0;
}

/* Every page the page server holds (lazy, not in the pages file), last run first. */
static int collect(const struct crimg *img, struct todo *t, uint64_t *pages)
{
	size_t i, j;
	int ret;

	for (i = crimg_nr_tasks(img); i-- > 0;) {
		const struct crimg_task *task = crimg_task(img, i);

		for (j = task->nr_pmes; j-- > 0;) {
			const struct crimg_pme *pe = &task->pmes[j];

			if (!(pe->flags & CRIMG_PE_LAZY) || (pe->flags & CRIMG_PE_PRESENT))
				continue;
			ret = todo_push(t, task->pid, pe->vaddr, pe->nr_pages);
			if (ret)
				return ret;
			*pages += pe->nr_pages;
		}
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pull(struct remote *r, struct todo *t, uint64_t *got_pages)
{
	struct pollfd pfd = { .fd = remote_fd(r), .events = POLLIN };
	size_t inflight = 0;
	struct ps_req *q;
	int ret;

	while (t->n || inflight) {
		while (t->n && remote_bulk_slot(r)) {
			struct piece *p = &t->v[t->n - 1];
			uint64_t nr = p->nr < remote_bulk_pages(r) ? p->nr : remote_bulk_pages(r);

			ret = remote_get(r, p->vpid, p->addr, nr, false, &q);
			if (ret)
				return ret;
			inflight++;
			p->addr += nr << PAGE_SHIFT;
			p->nr -= nr;
			if (!p->nr)
				t->n--;
		}
		ret = remote_next(r, &q);
		if (ret < 0)
			return ret;
		if (!ret) {
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		inflight--;
		*got_pages += q->got;
		if (q->got < q->nr_pages) {
			ret = todo_push(t, q->vpid, q->img_addr + (q->got << PAGE_SHIFT), q->nr_pages - q->got);
			if (ret)
				return ret;
		}
		remote_release(r, q);
	}
	return 0;
}

/* ARG as a number from 1 to MAX, or 0 if it is not one. */
static unsigned int bounded(const char *arg, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 0);

	return end != arg && !*end && v >= 1 && v <= max ? (unsigned int)v : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-pull --images DIR --port PORT [--address A] [--pages N] [--depth N]\n"
		   "Fetch every lazy page of the dump in DIR from the page server at A (default the\n"
		   "loopback) port PORT and drop it: requests of N pages (default 1 MiB's worth),\n"
		   "--depth of them in flight (default 2). Prints pages, requests, wall_s, last_s,\n"
		   "gbs and cpu_s as key=value lines.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "images", required_argument, NULL, 'D' }, { "port", required_argument, NULL, 'p' },
		{ "address", required_argument, NULL, 'a' }, { "pages", required_argument, NULL, 'n' },
		{ "depth", required_argument, NULL, 'd' },   { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct remote_opts o = {
		.ps_socket = -1, .single_connection = true, .reconnect_timeout = 30, .bulk_depth = 2,
	};
	const char *dir = NULL;
	struct crimg *img = NULL;
	struct crimg_error err;
	struct remote *r = NULL;
	struct remote_stats st;
	struct todo t = { 0 };
	uint64_t want = 0, got = 0;
	struct rusage ru;
	double t0, t1, t2;
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'D':
			dir = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 'a':
			o.address = optarg;
			break;
		case 'n': /* the daemon's --ps-bulk-pages and --ps-bulk-depth bounds */
			o.bulk_pages = bounded(optarg, 65536);
			if (!o.bulk_pages) {
				usage(stderr);
				return 2;
			}
			break;
		case 'd':
			o.bulk_depth = bounded(optarg, 64);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!dir || o.port <= 0 || !o.bulk_depth || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!o.bulk_pages)
		o.bulk_pages = PAGES_IN(1 << 20);
	o.bulk_depth_shared = o.bulk_depth;
	log_setup(NULL, LOG_WARN, LOG_STYLE_PLAIN);
	if (crimg_open(dir, &img, &err)) {
		fprintf(stderr, "bench-pull: %s\n", err.msg);
		return 1;
	}
	if (collect(img, &t, &want)) {
		fprintf(stderr, "bench-pull: out of memory\n");
		goto out;
	}
	t0 = now();
	if (remote_open(&r, img, &o) || remote_start(r))
		goto out;
	c = pull(r, &t, &got);
	t1 = now();
	remote_get_stats(r, &st);
	remote_close(r, !c);
	r = NULL;
	t2 = now();
	if (c) {
		fprintf(stderr, "bench-pull: %s\n", strerror(-c));
		goto out;
	}
	if (got != want) {
		fprintf(stderr, "bench-pull: %llu pages received, %llu asked for\n", (unsigned long long)got,
			(unsigned long long)want);
		goto out;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("pages=%llu\nrequests=%llu\nwall_s=%.6f\nlast_s=%.6f\ngbs=%.3f\ncpu_s=%.3f\n",
	       (unsigned long long)got, (unsigned long long)st.requests, t2 - t0, t1 - t0,
	       t1 > t0 ? (double)(got << PAGE_SHIFT) / (t1 - t0) / 1e9 : 0.0,
	       ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	ret = 0;
out:
	if (r)
		remote_close(r, false);
	free(t.v);
	crimg_close(img);
	return ret;
}
