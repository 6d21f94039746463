// SPDX-License-Identifier: MIT
/*
 * bench-rusage: run a command, reap it with wait4() and write what it cost.
 *
 *   bench-rusage -o FILE [--kill-pidfile PIDFILE [--signal N]] -- CMD [ARGS...]
 *
 * FILE gets key=value lines: start_mono and end_mono (CLOCK_MONOTONIC around fork and
 * reap), end_real (CLOCK_REALTIME at the reap: a restored process's CLOCK_MONOTONIC
 * does not compare, criu puts it in a time namespace that continues the dump's clock),
 * wall_s, user_s, sys_s, maxrss_kib (the child's peak RSS), status (its exit status,
 * or 128 + the signal that killed it) and, with --kill-pidfile, kill_error (0 or errno).
 * The exit status is the child's.
 *
 * It measures both lazy-pages daemons the same way (criu's has no --stats), and times
 * `criu restore -d`: with --kill-pidfile, once the child exited 0, the pid in PIDFILE
 * (criu's --pidfile: the restored root) gets signal N (SIGTERM by default) straight
 * from the reaping process, so the restored program starts its work microseconds after
 * the restore returned, not after a shell has noticed.
 *
 * The child dies with this process (PR_SET_PDEATHSIG), so a harness that SIGKILLs the
 * wrapper by pid also ends what it runs; SIGTERM and SIGINT are passed on.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test/tools/child.h"

static volatile pid_t child;

static double clock_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static int signal_pidfile(const char *path, int sig)
{
	char buf[32];
	ssize_t n;
	long pid;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1)
		return -EINVAL;
	return kill((pid_t)pid, sig) ? -errno : 0;
}

#define USAGE "bench-rusage -o FILE [--kill-pidfile PIDFILE [--signal N]] -- CMD [ARGS...]"

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "kill-pidfile", required_argument, NULL, 'k' },
		{ "signal", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *kill_pidfile = NULL;
	int sig = SIGTERM, c, code, kret = 0;
	double t0, t1, treal;
	struct sigaction sa = { .sa_handler = forward };
	struct rusage ru;
	pid_t pid;
	FILE *f;

	while ((c = getopt_long(argc, argv, "+o:", lopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'k':
			kill_pidfile = optarg;
			break;
		case 's':
			sig = atoi(optarg);
			break;
		default:
			child_usage(USAGE);
		}
	}
	if (!out || optind >= argc)
		child_usage(USAGE);

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	t0 = clock_now(CLOCK_MONOTONIC);
	pid = fork();
	if (pid < 0) {
		perror("bench-rusage: fork");
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "bench-rusage: %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	child = pid;
	/*
	 * Inherited descriptors stay with the child only: a ready pipe (--status-fd) must
	 * see EOF when the child dies, not when this wrapper does.
	 */
	for (c = 3; c < 1024; c++)
		close(c);

	code = child_reap(pid, &ru);
	if (code < 0) {
		perror("bench-rusage: wait4");
		return 1;
	}
	t1 = clock_now(CLOCK_MONOTONIC);
	treal = clock_now(CLOCK_REALTIME);
	if (kill_pidfile && code == 0)
		kret = signal_pidfile(kill_pidfile, sig);

	f = fopen(out, "w");
	if (!f) {
		fprintf(stderr, "bench-rusage: %s: %s\n", out, strerror(errno));
		return code ? code : 1;
	}
	fprintf(f, "start_mono=%.6f\nend_mono=%.6f\nend_real=%.6f\nwall_s=%.6f\nuser_s=%.6f\nsys_s=%.6f\n"
		"maxrss_kib=%ld\nstatus=%d\n",
		t0, t1, treal, t1 - t0, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss, code);
	if (kill_pidfile)
		fprintf(f, "kill_error=%d\n", -kret);
	if (fclose(f)) {
		fprintf(stderr, "bench-rusage: %s: %s\n", out, strerror(errno));
		return code ? code : 1;
	}
	if (kret) {
		fprintf(stderr, "bench-rusage: signal to the pid in %s: %s\n", kill_pidfile, strerror(-kret));
		return code ? code : 1;
	}
	return code;
}
