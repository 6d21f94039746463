// SPDX-License-Identifier: MIT
/* --stats FILE: what the daemon did, as JSON, one object per task. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "daemon.h"
#include "lazy_pages.h"

void stats_add_latency(struct fault_stats *st, uint64_t ns)
{
	if (st->nr_lat == st->cap_lat) {
		size_t cap = st->cap_lat ? st->cap_lat * 2 : 1024;
		uint64_t *n = realloc(st->lat_ns, cap * sizeof(*n));

		/* Losing a latency sample is better than failing a restore over it. */
		if (!n)
			return;
		st->lat_ns = n;
		st->cap_lat = cap;
	}
	st->lat_ns[st->nr_lat++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of sorted V, in microseconds. */
static double quantile_us(const uint64_t *v, size_t n, double q)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(q * (n - 1) + 0.5);
	return v[i] / 1000.0;
}

static const struct remote_stats *remote_st;

void stats_set_remote(const struct remote_stats *rs)
{
	remote_st = rs;
}

int stats_write_json(const char *path, struct lazy_task **tasks, size_t nr, double wall_s, double populate_s)
{
	uint64_t bytes = 0;
	struct rusage ru;
	FILE *f;
	size_t i;

	f = fopen(path, "w");
	if (!f) {
		pr_err("--stats %s: %m", path);
		return -errno;
	}
	fprintf(f, "{\n  \"wall_seconds\": %.6f,\n  \"populate_seconds\": %.6f,\n  \"tasks\": [", wall_s, populate_s);
	for (i = 0; i < nr; i++) {
		struct lazy_task *t = tasks[i];
		struct fault_stats *st = &t->st;

		qsort(st->lat_ns, st->nr_lat, sizeof(*st->lat_ns), cmp_u64);
		bytes += st->bytes;
		fprintf(f,
			"%s\n    {\"pid\": %d, \"host_pid\": %d, \"forked_from\": %d, \"exited_early\": %s, "
			"\"faults\": %llu, \"pages_fault\": %llu, \"pages_background\": %llu, \"pages_zero\": %llu, "
			"\"bytes\": %llu, \"fault_latency_us\": {\"median\": %.1f, \"p99\": %.1f, \"max\": %.1f}}",
			i ? "," : "", t->vpid, t->host_pid, t->parent_vpid, t->gone ? "true" : "false",
			(unsigned long long)st->faults, (unsigned long long)st->pages_fault,
			(unsigned long long)st->pages_bg, (unsigned long long)st->pages_zero,
			(unsigned long long)st->bytes, quantile_us(st->lat_ns, st->nr_lat, 0.5),
			quantile_us(st->lat_ns, st->nr_lat, 0.99), quantile_us(st->lat_ns, st->nr_lat, 1.0));
	}
	getrusage(RUSAGE_SELF, &ru);
	if (remote_st)
		fprintf(f,
			"\n  ],\n  \"remote\": {\"requests\": %llu, \"urgent_requests\": %llu, \"pages\": %llu, "
			"\"dup_pages\": %llu, \"reconnects\": %llu, \"urgent_channel\": %s, \"tls\": %s, "
			"\"header_bytes\": %d",
			(unsigned long long)remote_st->requests, (unsigned long long)remote_st->urgent_requests,
			(unsigned long long)remote_st->pages, (unsigned long long)remote_st->dup_pages,
			(unsigned long long)remote_st->reconnects, remote_st->urgent_channel ? "true" : "false",
			remote_st->tls ? "true" : "false", (int)remote_st->layout);
	fprintf(f,
		"%s,\n  \"bytes\": %llu,\n  \"gbytes_per_second\": %.3f,\n  \"daemon_max_rss_kib\": %ld,\n"
		"  \"daemon_cpu_seconds\": %.3f\n}\n",
		remote_st ? "}" : "\n  ]", (unsigned long long)bytes, populate_s > 0 ? bytes / populate_s / 1e9 : 0.0, ru.ru_maxrss,
		ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (fclose(f)) {
		pr_err("--stats %s: %m", path);
		return -EIO;
	}
	return 0;
}
