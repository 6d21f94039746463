// SPDX-License-Identifier: MIT
/*
 * --stats FILE: what the daemon did, as JSON, one object per task. Latencies go into
 * fixed histograms, so a restore with millions of faults costs no more memory than one
 * with a few (the daemon's RSS is a target of its own).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagesize.h"
#include "stats.h"
#include "lazy_pages.h"

/* 16 buckets per power of two: a quantile is known to within 1/32 of its value. */
static size_t fine_bucket(uint64_t ns)
{
	int oct;
	size_t i;

	if (ns < 16)
		return ns;
	oct = 63 - __builtin_clzll(ns);
	i = (size_t)(oct - 3) * 16 + ((ns >> (oct - 4)) & 15);
	return i < LAT_FINE_BUCKETS ? i : LAT_FINE_BUCKETS - 1;
}

/* The middle of fine bucket I, in ns. */
static double fine_value(size_t i)
{
	int oct;

	if (i < 16)
		return i;
	oct = (int)(i / 16) + 3;
	return (double)((16 + i % 16) << (oct - 4)) + (double)(1ULL << (oct - 4)) / 2;
}

void stats_add_latency(struct fault_stats *st, uint64_t ns)
{
	uint64_t us = ns / 1000;
	size_t b = us ? 64 - __builtin_clzll(us) : 0;

	st->lat_fine[fine_bucket(ns)]++;
	st->lat_log2_us[b < LAT_LOG2_BUCKETS ? b : LAT_LOG2_BUCKETS - 1]++;
	st->nr_lat++;
	if (ns > st->lat_max_ns)
		st->lat_max_ns = ns;
}

/* The q-quantile (0..1) of the latencies, in microseconds. */
static double quantile_us(const struct fault_stats *st, double q)
{
	uint64_t rank, seen = 0;
	size_t i;
	double v;

	if (!st->nr_lat)
		return 0;
	rank = (uint64_t)(q * (st->nr_lat - 1) + 0.5);
	for (i = 0; i < LAT_FINE_BUCKETS; i++) {
		seen += st->lat_fine[i];
		if (seen > rank)
			break;
	}
	v = fine_value(i < LAT_FINE_BUCKETS ? i : LAT_FINE_BUCKETS - 1);
	return (v < st->lat_max_ns ? v : st->lat_max_ns) / 1000.0;
}

static const struct remote_stats *remote_st;
static const struct loop_stats *loop_st;

void stats_set_remote(const struct remote_stats *rs)
{
	remote_st = rs;
}

void stats_set_loop(const struct loop_stats *ls)
{
	loop_st = ls;
}

static void write_hist(FILE *f, const struct fault_stats *st)
{
	int last = LAT_LOG2_BUCKETS - 1, i;

	while (last > 0 && !st->lat_log2_us[last])
		last--;
	fputs("[", f);
	for (i = 0; i <= last; i++)
		fprintf(f, "%s%u", i ? ", " : "", st->lat_log2_us[i]);
	fputs("]", f);
}

static void write_json(FILE *f, struct lazy_task **tasks, size_t nr, double wall_s, double populate_s,
		       double from_uffd_s)
{
	uint64_t bytes = 0;
	struct rusage ru;
	size_t i;

	fprintf(f,
		"{\n  \"wall_seconds\": %.6f,\n  \"populate_seconds\": %.6f,\n  \"populate_from_uffd_seconds\": %.6f,\n"
		"  \"tasks\": [",
		wall_s, populate_s, from_uffd_s);
	for (i = 0; i < nr; i++) {
		struct lazy_task *t = tasks[i];
		struct fault_stats *st = &t->st;

		bytes += st->bytes;
		fprintf(f,
			"%s\n    {\"pid\": %d, \"host_pid\": %d, \"forked_from\": %d, \"exited_early\": %s, "
			"\"faults\": %llu, \"pages_fault\": %llu, \"pages_background\": %llu, \"pages_zero\": %llu, "
			"\"bytes\": %llu, \"fault_latency_us\": {\"median\": %.1f, \"p99\": %.1f, \"max\": %.1f}, ",
			i ? "," : "", t->vpid, t->host_pid, t->parent_vpid, t->gone ? "true" : "false",
			(unsigned long long)st->faults, (unsigned long long)st->pages_fault,
			(unsigned long long)st->pages_bg, (unsigned long long)st->pages_zero,
			(unsigned long long)st->bytes, quantile_us(st, 0.5), quantile_us(st, 0.99),
			st->lat_max_ns / 1000.0);
		fprintf(f,
			"\"pages_fault_around\": %llu, \"pages_prefetch\": %llu, "
			"\"faults_by_cause\": {\"copied\": %llu, \"already_present\": %llu, \"zero\": %llu, "
			"\"queued\": %llu}, "
			"\"bytes_by_path\": {\"fault\": %llu, \"fault_around\": %llu, \"background\": %llu, "
			"\"prefetch\": %llu, \"zero\": %llu}, "
			"\"prefetch\": {\"profile_pages\": %llu, \"hits\": %llu, \"misses\": %llu, \"skipped_pages\": %llu}, "
			"\"fault_latency_log2_us\": ",
			(unsigned long long)st->pages_around, (unsigned long long)st->pages_prefetch,
			(unsigned long long)st->faults_copied, (unsigned long long)st->faults_present,
			(unsigned long long)st->faults_zero, (unsigned long long)st->faults_queued,
			(unsigned long long)st->bytes_path[PATH_FAULT], (unsigned long long)st->bytes_path[PATH_AROUND],
			(unsigned long long)st->bytes_path[PATH_BG], (unsigned long long)st->bytes_path[PATH_PREFETCH],
			(unsigned long long)(st->pages_zero * PAGE_SZ), (unsigned long long)st->profile_pages,
			(unsigned long long)st->prefetch_hits, (unsigned long long)st->prefetch_misses,
			(unsigned long long)st->profile_skipped);
		write_hist(f, st);
		fputs("}", f);
	}
	getrusage(RUSAGE_SELF, &ru);
	fputs("\n  ],", f);
	if (loop_st)
		fprintf(f,
			"\n  \"loop\": {\"busy_poll_us\": %llu, \"polled_wakeups\": %llu, \"epoll_sleeps\": %llu, "
			"\"profile_records\": %llu, \"profile_skipped_records\": %llu, \"recorded_records\": %llu, "
			"\"prefetch_done_ms\": %.3f, \"copy_threads\": %llu, \"copy_thread_bytes\": %llu, "
			"\"copy_thread_prefetch_bytes\": %llu},",
			(unsigned long long)loop_st->busy_poll_us, (unsigned long long)loop_st->polled_wakeups,
			(unsigned long long)loop_st->epoll_sleeps, (unsigned long long)loop_st->profile_records,
			(unsigned long long)loop_st->profile_skipped_records,
			(unsigned long long)loop_st->recorded_records, loop_st->prefetch_done_ms,
			(unsigned long long)loop_st->copy_threads, (unsigned long long)loop_st->copy_thread_bytes,
			(unsigned long long)loop_st->copy_thread_prefetch_bytes);
	if (remote_st)
		fprintf(f,
			"\n  \"remote\": {\"requests\": %llu, \"urgent_requests\": %llu, \"pages\": %llu, "
			"\"dup_pages\": %llu, \"reconnects\": %llu, \"urgent_channel\": %s, \"tls\": %s, "
			"\"header_bytes\": %d},",
			(unsigned long long)remote_st->requests, (unsigned long long)remote_st->urgent_requests,
			(unsigned long long)remote_st->pages, (unsigned long long)remote_st->dup_pages,
			(unsigned long long)remote_st->reconnects, remote_st->urgent_channel ? "true" : "false",
			remote_st->tls ? "true" : "false", (int)remote_st->layout);
	fprintf(f,
		"\n  \"bytes\": %llu,\n  \"gbytes_per_second\": %.3f,\n  \"gbytes_per_second_from_uffd\": %.3f,\n"
		"  \"daemon_max_rss_kib\": %ld,\n  \"daemon_cpu_seconds\": %.3f\n}\n",
		(unsigned long long)bytes, populate_s > 0 ? bytes / populate_s / 1e9 : 0.0,
		from_uffd_s > 0 ? bytes / from_uffd_s / 1e9 : 0.0, ru.ru_maxrss,
		ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
}

static bool display;

void stats_set_display(bool on)
{
	display = on;
}

int stats_write_json(const char *path, struct lazy_task **tasks, size_t nr, double wall_s, double populate_s,
		     double from_uffd_s)
{
	char *tmp = NULL;
	mode_t mask;
	FILE *f = NULL;
	int fd, ret;

	/* --display-stats: the same JSON on stdout, as criu shows its stats on the console. */
	if (display || !strcmp(path, "-")) {
		write_json(stdout, tasks, nr, wall_s, populate_s, from_uffd_s);
		fflush(stdout);
	}
	if (!strcmp(path, "-"))
		return 0;

	/*
	 * Written beside PATH and renamed over it: whoever polls for the file (bench, a
	 * script waiting for the daemon) never reads half of it, and an old file is never
	 * half overwritten. Not fsync'ed: this is about readers, not crashes.
	 */
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		ret = -ENOMEM;
		pr_err("--stats %s: %s", path, strerror(-ret));
		goto fail;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pr_err("--stats %s: cannot create a file beside it: %m", path);
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	/* mkostemp makes it 0600; keep the mode a plain create would have given. */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask))
		pr_warn("--stats %s: chmod: %m", tmp);
	f = fdopen(fd, "w");
	if (!f) {
		ret = -errno;
		pr_err("--stats %s: %m", tmp);
		close(fd);
		goto fail;
	}
	write_json(f, tasks, nr, wall_s, populate_s, from_uffd_s);
	ret = ferror(f) ? -EIO : 0;
	if (fclose(f) && !ret)
		ret = -errno;
	f = NULL;
	if (ret) {
		pr_err("--stats %s: write: %s", tmp, strerror(-ret));
		goto fail;
	}
	if (rename(tmp, path)) {
		ret = -errno;
		pr_err("--stats %s: rename from %s: %m", path, tmp);
		goto fail;
	}
	free(tmp);
	return 0;
fail:
	if (f)
		fclose(f);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return ret;
}
