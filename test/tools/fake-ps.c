// SPDX-License-Identifier: MIT
/*
 * fake-ps: a page server that misbehaves on purpose, to test how the lazy-pages daemon
 * takes a broken server. Like CRIU's, it accepts one connection and stops listening.
 *
 *   fake-ps -D DIR --address A --port P --layout 24|32 --good N --bad MODE
 *
 * The first N GET requests get correct answers, read from DIR's pages files; the next
 * one gets a bad answer, chosen by MODE:
 *   wrong-size   the header announces one page more than was asked for
 *   wrong-addr   the header names the next page instead of the one asked for
 *   garbage-cmd  the header's command is 0xdeadbeef
 *   trickle      the answer goes out one byte every 3 s
 * Then it keeps the connection open (reading and ignoring) until the client closes it,
 * so the client has to see the fault in what it got, not in an EOF. Two more modes:
 *   stall        nothing more is read or answered; the connection and the listening
 *                socket stay open (never accepted again: a reconnect lands in the
 *                backlog and gets no further, as with a stopped server)
 *   close-mid    the header and half a page of the answer, then the connection closes;
 *                it listens again and does the same to the first GET of every later
 *                connection (a server that accepts and fails again, forever)
 * And one that answers every GET well:
 *   late-status  CLOSE gets its status only 1 s later, as a source whose send queue is
 *                stuck behind a full window; then, as criu's server, it reads on: exit 0
 *                when that read sees EOF (the client's FIN), 1 on anything else
 * Prints "listening" once it listens (stdout, flushed). Exit 0 when the bad answer
 * went out, 1 otherwise, 2 on bad usage; stall and close-mid run until killed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crimg.h"

struct hdr {
	uint32_t cmd;
	uint64_t nr, vaddr, id;
};

static int layout = 24;

static void enc(const struct hdr *h, unsigned char *b)
{
	uint32_t nr32 = (uint32_t)h->nr;

	memset(b, 0, 32);
	memcpy(b, &h->cmd, 4);
	if (layout == 24) {
		memcpy(b + 4, &nr32, 4);
		memcpy(b + 8, &h->vaddr, 8);
		memcpy(b + 16, &h->id, 8);
	} else {
		memcpy(b + 8, &h->nr, 8);
		memcpy(b + 16, &h->vaddr, 8);
		memcpy(b + 24, &h->id, 8);
	}
}

static void dec(const unsigned char *b, struct hdr *h)
{
	uint32_t nr32;

	memcpy(&h->cmd, b, 4);
	if (layout == 24) {
		memcpy(&nr32, b + 4, 4);
		h->nr = nr32;
		memcpy(&h->vaddr, b + 8, 8);
		memcpy(&h->id, b + 16, 8);
	} else {
		memcpy(&h->nr, b + 8, 8);
		memcpy(&h->vaddr, b + 16, 8);
		memcpy(&h->id, b + 24, 8);
	}
}

static int xfer(int fd, void *buf, size_t len, int out)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* Pages [vaddr, vaddr + nr) of task ID from the images; the count that could be had. */
static uint64_t read_pages(struct crimg *img, uint64_t id, uint64_t vaddr, uint64_t nr, unsigned char *buf)
{
	const struct crimg_task *t = crimg_find_task(img, (pid_t)id);
	struct crimg_error err;
	uint64_t got = 0;

	while (t && got < nr) {
		struct crimg_loc loc;

		if (crimg_locate(img, t, vaddr + got * CRIMG_PAGE_SIZE, &loc, &err) || loc.where != CRIMG_PRESENT ||
		    pread(loc.fd, buf + got * CRIMG_PAGE_SIZE, CRIMG_PAGE_SIZE, loc.off) != (ssize_t)CRIMG_PAGE_SIZE)
			break;
		got++;
	}
	return got;
}

static int late_status(int fd)
{
	int32_t status = 0;
	char c;
	ssize_t n;

	sleep(1);
	if (send(fd, &status, sizeof(status), MSG_NOSIGNAL) != sizeof(status))
		fprintf(stderr, "fake-ps: the late CLOSE status: %m\n");
	n = recv(fd, &c, 1, 0);
	fprintf(stderr, "fake-ps: after CLOSE and a late status: %s\n",
		n == 0 ? "EOF" : n > 0 ? "more data" : strerror(errno));
	return n != 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "address", required_argument, NULL, 'a' }, { "port", required_argument, NULL, 'p' },
		{ "layout", required_argument, NULL, 'l' },  { "good", required_argument, NULL, 'g' },
		{ "bad", required_argument, NULL, 'b' },     {},
	};
	const char *dir = NULL, *addr = "127.0.0.1", *bad = NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	unsigned long good = 0, served = 0;
	struct crimg_error err;
	struct crimg *img;
	unsigned char hb[32], *buf;
	int opt, lfd, fd, one = 1, port = 0;

	while ((opt = getopt_long(argc, argv, "D:", lo, NULL)) != -1) {
		switch (opt) {
		case 'D': dir = optarg; break;
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'l': layout = atoi(optarg); break;
		case 'g': good = strtoul(optarg, NULL, 10); break;
		case 'b': bad = optarg; break;
		default: return 2;
		}
	}
	if (!dir || !bad || !port || (layout != 24 && layout != 32) ||
	    (strcmp(bad, "wrong-size") && strcmp(bad, "wrong-addr") && strcmp(bad, "garbage-cmd") &&
	     strcmp(bad, "trickle") && strcmp(bad, "stall") && strcmp(bad, "close-mid") &&
	     strcmp(bad, "late-status"))) {
		fprintf(stderr, "usage: fake-ps -D DIR --address A --port P --layout 24|32 --good N "
				"--bad wrong-size|wrong-addr|garbage-cmd|trickle|stall|close-mid|late-status\n");
		return 2;
	}
	if (crimg_open(dir, &img, &err)) {
		fprintf(stderr, "fake-ps: %s\n", err.msg);
		return 1;
	}
	buf = malloc(64 << 20);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_port = htons(port);
	if (!buf || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 || bind(lfd, (void *)&sa, sizeof(sa)) ||
	    listen(lfd, strcmp(bad, "stall") ? 1 : 64)) {
		perror("fake-ps: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
again:
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return 1;
	if (strcmp(bad, "stall") && strcmp(bad, "close-mid"))
		close(lfd);
	while (!xfer(fd, hb, layout, 0)) {
		struct hdr h, r;
		uint64_t n;

		dec(hb, &h);
		if (h.cmd == 0x1023 && !strcmp(bad, "late-status"))
			return late_status(fd);
		if ((h.cmd & 0xffff) != 7 || h.nr > (64 << 20) / CRIMG_PAGE_SIZE) {
			/* Our daemon's hello on a second connection: refuse it as CRIU's server would. */
			if (!strcmp(bad, "close-mid")) {
				close(fd);
				goto again;
			}
			break; /* CLOSE, or something no daemon should send: stop */
		}
		n = read_pages(img, h.id, h.vaddr, h.nr, buf);
		r = (struct hdr){ .cmd = (4 << 16) | 6, .nr = n, .vaddr = h.vaddr, .id = h.id };
		if (served++ >= good) {
			if (!strcmp(bad, "stall")) {
				fprintf(stderr, "fake-ps: sent a stall answer (none) to GET %llu pages at 0x%llx\n",
					(unsigned long long)h.nr, (unsigned long long)h.vaddr);
				for (;;)
					pause();
			}
			enc(&r, hb);
			if (!strcmp(bad, "close-mid")) {
				xfer(fd, hb, layout, 1);
				xfer(fd, buf, CRIMG_PAGE_SIZE / 2, 1);
				close(fd);
				fprintf(stderr, "fake-ps: sent a close-mid answer to GET %llu pages at 0x%llx\n",
					(unsigned long long)h.nr, (unsigned long long)h.vaddr);
				goto again;
			}
			if (!strcmp(bad, "trickle")) {
				/* The client gives up long before a page is through. */
				size_t i, len = layout + (n ? CRIMG_PAGE_SIZE : 0);

				memmove(buf + layout, buf, len - layout);
				memcpy(buf, hb, layout);
				fprintf(stderr, "fake-ps: sent a trickle answer (one byte every 3 s) to GET %llu pages "
						"at 0x%llx\n",
					(unsigned long long)h.nr, (unsigned long long)h.vaddr);
				for (i = 0; i < len && !xfer(fd, buf + i, 1, 1); i++)
					sleep(3);
				return 0;
			}
			if (!strcmp(bad, "wrong-size"))
				r.nr = h.nr + 1;
			else if (!strcmp(bad, "wrong-addr"))
				r.vaddr += CRIMG_PAGE_SIZE;
			else
				r.cmd = 0xdeadbeef;
			enc(&r, hb);
			xfer(fd, hb, layout, 1);
			xfer(fd, buf, n * CRIMG_PAGE_SIZE, 1);
			fprintf(stderr, "fake-ps: sent a %s answer to GET %llu pages at 0x%llx of task %llu\n", bad,
				(unsigned long long)h.nr, (unsigned long long)h.vaddr, (unsigned long long)h.id);
			while (recv(fd, hb, sizeof(hb), 0) > 0)
				;
			return 0;
		}
		enc(&r, hb);
		if (xfer(fd, hb, layout, 1) || xfer(fd, buf, n * CRIMG_PAGE_SIZE, 1))
			break;
	}
	fprintf(stderr, "fake-ps: the client went away after %lu answers\n", served);
	return 1;
}
