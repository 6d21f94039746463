// SPDX-License-Identifier: MIT
/*
 * bench-floor: what userfaultfd itself costs on this machine, the floor under any
 * lazy-pages daemon.
 *
 *   bench-floor [--mib N] [--reps N] [--faults N]
 *
 * Prints key=value lines:
 *   copy_4k_gbs, copy_2m_gbs   UFFDIO_COPY into a registered anonymous region of N MiB
 *                              (256) in 4 KiB or 2 MiB chunks; median of --reps (5)
 *   copy_2m_2t_gbs             two threads, one per CPU, each filling its half in 2 MiB
 *                              chunks: whether a parallel background copy can pay here
 *   rt_poll_us                 fault round trip (the faulting thread's view of one
 *                              4 KiB first touch served by UFFDIO_COPY), handler
 *                              blocked in poll() on the other CPU; median of --faults
 *   rt_spin_us                 the same, handler busy-polling read() on the other CPU
 *   rt_same_us                 the same, handler and faulting thread on one CPU
 * The faulting thread runs on CPU 0, as the restored workload does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE	4096UL
#define HUGE	(2UL << 20)

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) ? -1 : 0;
}

/* The syscall, or the device where a seccomp filter or the sysctl refuses it. */
static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd, dev;

	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return -1;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd < 0)
			return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_register(int fd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg);
}

static int copy_range(int fd, char *dst, size_t len, const char *src, size_t chunk)
{
	struct uffdio_copy c = { 0 };
	size_t off;

	for (off = 0; off < len; off += chunk) {
		c.dst = (uintptr_t)(dst + off);
		c.src = (uintptr_t)(src + off % HUGE);
		c.len = chunk;
		c.mode = 0;
		c.copy = 0;
		if (ioctl(fd, UFFDIO_COPY, &c) || c.copy != (int64_t)chunk) {
			fprintf(stderr, "bench-floor: UFFDIO_COPY at +%zu: %s\n", off, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct copier {
	int fd;
	char *dst;
	size_t len;
	const char *src;
	int cpu;
	pthread_barrier_t *go;
	int ret;
};

static void *copier_main(void *arg)
{
	struct copier *c = arg;

	pin(c->cpu);
	pthread_barrier_wait(c->go);
	c->ret = copy_range(c->fd, c->dst, c->len, c->src, HUGE);
	return NULL;
}

/* GB/s of one fill of [region, +len): one thread in @chunk pieces, or two in 2 MiB. */
static double copy_once(int fd, char *region, size_t len, const char *src, size_t chunk, bool two)
{
	pthread_barrier_t go;
	struct copier c[2];
	pthread_t th[2];
	double t0, t1;
	int i, ret = 0;

	/* Empty again: the next fill allocates and copies every page, as a restore does. */
	if (madvise(region, len, MADV_DONTNEED))
		return -1;
	if (!two) {
		pin(0);
		t0 = mono_now();
		if (copy_range(fd, region, len, src, chunk))
			return -1;
		t1 = mono_now();
		return len / (t1 - t0) / 1e9;
	}
	pthread_barrier_init(&go, NULL, 3);
	for (i = 0; i < 2; i++) {
		c[i] = (struct copier){ fd, region + i * len / 2, len / 2, src, i, &go, 0 };
		pthread_create(&th[i], NULL, copier_main, &c[i]);
	}
	pthread_barrier_wait(&go);
	t0 = mono_now();
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ret |= c[i].ret;
	}
	t1 = mono_now();
	pthread_barrier_destroy(&go);
	return ret ? -1 : len / (t1 - t0) / 1e9;
}

enum handler_mode { H_POLL, H_SPIN };

struct handler {
	int fd, stop_fd, cpu;
	enum handler_mode mode;
	const char *src;
	volatile bool stop;
	int ret;
};

static int serve_one(struct handler *h)
{
	struct uffd_msg msg;
	struct uffdio_copy c = { 0 };
	ssize_t n = read(h->fd, &msg, sizeof(msg));

	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
		return -1;
	c.dst = msg.arg.pagefault.address & ~(PAGE - 1);
	c.src = (uintptr_t)h->src;
	c.len = PAGE;
	if (ioctl(h->fd, UFFDIO_COPY, &c) && errno != EEXIST)
		return -1;
	return 1;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = { { .fd = h->fd, .events = POLLIN }, { .fd = h->stop_fd, .events = POLLIN } };

	pin(h->cpu);
	while (!h->stop) {
		if (h->mode == H_POLL) {
			if (poll(pfd, 2, -1) < 0 && errno != EINTR)
				break;
			if (pfd[1].revents)
				break;
		}
		if (serve_one(h) < 0) {
			h->ret = -1;
			break;
		}
	}
	return NULL;
}

/* Median µs of @n first touches, each served by a handler thread on @hcpu. */
static double round_trip(enum handler_mode mode, int hcpu, int n, const char *src)
{
	size_t len = (size_t)n * PAGE;
	struct handler h = { .mode = mode, .cpu = hcpu, .src = src };
	double *lat = calloc(n, sizeof(*lat)), res = -1;
	struct timespec t0, t1;
	pthread_t th;
	char *region;
	int i;

	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	h.fd = uffd_open();
	h.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!lat || region == MAP_FAILED || h.fd < 0 || h.stop_fd < 0 || uffd_register(h.fd, region, len))
		goto out;
	pin(0);
	pthread_create(&th, NULL, handler_main, &h);
	/* Let the handler reach its wait on the other CPU (or yield to it on this one). */
	usleep(10000);
	for (i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		(void)*(volatile char *)(region + i * PAGE);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		lat[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	h.stop = true;
	eventfd_write(h.stop_fd, 1);
	pthread_join(th, NULL);
	if (!h.ret)
		res = median(lat, n);
out:
	if (h.fd >= 0)
		close(h.fd);
	if (h.stop_fd >= 0)
		close(h.stop_fd);
	if (region != MAP_FAILED)
		munmap(region, len);
	free(lat);
	return res;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ "faults", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	int reps = 5, faults = 2000, c, r, k, fd;
	size_t len = 256UL << 20;
	double v[64], res[3];
	const size_t chunks[2] = { PAGE, HUGE };
	char *src, *region;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			len = (size_t)atol(optarg) << 20;
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 'f':
			faults = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench-floor [--mib N] [--reps N] [--faults N]\n");
			return 2;
		}
	}
	if (reps < 1 || reps > 64 || faults < 1 || !len || len % (2 * HUGE)) {
		fprintf(stderr, "bench-floor: --reps 1..64, --faults >= 1, --mib a multiple of 4\n");
		return 2;
	}
	src = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = uffd_open();
	if (src == MAP_FAILED || region == MAP_FAILED || fd < 0 || uffd_register(fd, region, len)) {
		perror("bench-floor: setup (mmap, userfaultfd, UFFDIO_REGISTER)");
		return 1;
	}
	memset(src, 0x5a, HUGE);

	for (k = 0; k < 3; k++) {
		/* A first fill warms the pages the later ones get back from the allocator. */
		if (copy_once(fd, region, len, src, k < 2 ? chunks[k] : HUGE, k == 2) < 0)
			return 1;
		for (r = 0; r < reps; r++) {
			v[r] = copy_once(fd, region, len, src, k < 2 ? chunks[k] : HUGE, k == 2);
			if (v[r] < 0)
				return 1;
		}
		res[k] = median(v, reps);
	}
	printf("copy_4k_gbs=%.3f\ncopy_2m_gbs=%.3f\ncopy_2m_2t_gbs=%.3f\n", res[0], res[1], res[2]);

	res[0] = round_trip(H_POLL, 1, faults, src);
	res[1] = round_trip(H_SPIN, 1, faults, src);
	res[2] = round_trip(H_POLL, 0, faults, src);
	if (res[0] < 0 || res[1] < 0 || res[2] < 0) {
		fprintf(stderr, "bench-floor: fault round trip failed\n");
		return 1;
	}
	printf("rt_poll_us=%.2f\nrt_spin_us=%.2f\nrt_same_us=%.2f\n", res[0], res[1], res[2]);
	return 0;
}
