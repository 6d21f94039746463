// SPDX-License-Identifier: MIT
/*
 * idle-conns: open many TCP connections to a server and send nothing on them, to see how
 * the server takes idle clients beyond its limits (test/zdtm/remote-ours.bats).
 *
 *   idle-conns ADDR PORT COUNT SECONDS [GAP_MS]
 *
 * COUNT (at most 4096) connections to the IPv4 ADDR:PORT, started GAP_MS (default 0) apart
 * (a burst beyond the server's listen backlog has its handshakes dropped and retried for
 * seconds, which a test cannot time); then for SECONDS it watches each: connected or
 * not, and when the server closed it. Prints one
 * line, then closes them all and exits 0 (2 on bad usage, 1 when it could not run):
 *
 *   connected C failed F pending P closed_at_once Q closed_later L open O
 *
 * closed_at_once: closed by the server within 1 s of connecting (a refusal);
 * closed_later: closed after that (an idle timeout, say); open: still open at the end;
 * pending: the connect had not completed (the server's backlog was full).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096

enum state { PENDING, FAILED, OPEN, CLOSED_AT_ONCE, CLOSED_LATER };

struct conn {
	int fd;
	enum state st;
	double t_up;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A connect that completed: connected, or failed. */
static void settle(struct conn *c, double t)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		c->st = FAILED;
		return;
	}
	c->st = OPEN;
	c->t_up = t;
}

/* Readable: the server closed it (we send nothing, so it has nothing to answer). */
static void check_closed(struct conn *c, double t)
{
	char b[256];
	ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);

	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return;
	c->st = t - c->t_up < 1.0 ? CLOSED_AT_ONCE : CLOSED_LATER;
}

int main(int argc, char **argv)
{
	static struct conn conns[MAX_CONNS];
	static struct pollfd pfds[MAX_CONNS];
	unsigned int count[CLOSED_LATER + 1] = {0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct rlimit rl;
	double end;
	long n, secs, gap = 0, i;
	char *e1, *e2, *e3 = "";

	if (argc != 5 && argc != 6)
		goto usage;
	n = strtol(argv[3], &e1, 10);
	secs = strtol(argv[4], &e2, 10);
	if (argc == 6)
		gap = strtol(argv[5], &e3, 10);
	if (*e1 || *e2 || *e3 || n < 1 || n > MAX_CONNS || secs < 1 || secs > 600 || gap < 0 || gap > 1000 ||
	    inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || atoi(argv[2]) < 1 || atoi(argv[2]) > 65535)
		goto usage;
	sa.sin_port = htons(atoi(argv[2]));
	/* Our own fds must not be what limits the count. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)n + 16) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (i = 0; i < n; i++) {
		conns[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (conns[i].fd < 0) {
			perror("idle-conns: socket");
			return 1;
		}
		conns[i].st = PENDING;
		if (!connect(conns[i].fd, (struct sockaddr *)&sa, sizeof(sa)))
			settle(&conns[i], now_s());
		else if (errno != EINPROGRESS)
			conns[i].st = FAILED;
		if (gap)
			usleep(gap * 1000);
	}
	end = now_s() + secs;
	for (;;) {
		double t = now_s();
		int left = (int)((end - t) * 1000), k = 0;

		if (left <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (conns[i].st != PENDING && conns[i].st != OPEN)
				continue;
			pfds[k].fd = conns[i].fd;
			pfds[k].events = conns[i].st == PENDING ? POLLOUT : POLLIN;
			pfds[k].revents = 0;
			k++;
		}
		if (!k)
			break;
		if (poll(pfds, k, left > 100 ? 100 : left) <= 0)
			continue;
		t = now_s();
		for (i = 0, k = 0; i < n; i++) {
			if (conns[i].st != PENDING && conns[i].st != OPEN)
				continue;
			if (pfds[k].revents) {
				if (conns[i].st == PENDING)
					settle(&conns[i], t);
				else
					check_closed(&conns[i], t);
			}
			k++;
		}
	}
	for (i = 0; i < n; i++) {
		count[conns[i].st]++;
		close(conns[i].fd);
	}
	printf("connected %u failed %u pending %u closed_at_once %u closed_later %u open %u\n",
	       count[OPEN] + count[CLOSED_AT_ONCE] + count[CLOSED_LATER], count[FAILED], count[PENDING],
	       count[CLOSED_AT_ONCE], count[CLOSED_LATER], count[OPEN]);
	return 0;
usage:
	fprintf(stderr, "usage: idle-conns ADDR PORT COUNT(1-%d) SECONDS(1-600) [GAP_MS(0-1000)]\n", MAX_CONNS);
	return 2;
}
