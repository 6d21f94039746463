// SPDX-License-Identifier: MIT
/*
 * Page data from a page server (CRIU's `criu dump --lazy-pages --port`,
 * `criu page-server --lazy-pages`, or ours): GET requests by dump-time address, answered
 * in order on each connection.
 *
 * Threads: the loop (main thread) sends requests and consumes answers; one receiver
 * thread per connection reads answers into the request's own buffer, checks them, and
 * hands them over through a queue and an eventfd. The receiver also owns the connection's
 * life: when it drops, it reconnects (faulting threads just wait, their pages are still
 * missing), re-sends every request not yet answered, in order, and goes on; after
 * --reconnect-timeout it gives up and the loop stops the restore.
 *
 * Connections: the main one carries everything against a CRIU server, which takes one
 * connection and answers in order, so the loop bounds the background data queued on it.
 * Once that connection has had its first answer (a CRIU server has stopped listening by
 * then), a second one is tried; our page server takes it and it becomes the urgent
 * channel for faults, which then never wait behind background data.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pagesize.h"
#include "remote.h"
#include "lazy_pages.h"
#include "proto.h"

#define TICK_MS			200
#define URGENT_SLOTS		256
#define URGENT_SLOT_PAGES	PAGES_IN(64 << 10) /* a fault's request: its page and some after */
#define MAX_RETRY_DELAY_MS	500
#define MAX_BACKOFF_MS		1000
#define HELLO_TIMEOUT_MS	3000
#define CLOSE_STATUS_TIMEOUT_MS 5000 /* TLS: the status comes before the server's close_notify */
#define CLOSE_STATUS_WAIT_MS	20   /* plain TCP: our FIN has told the server already */
#define LOG_EVERY_NS		(10 * 1000000000ULL)

enum conn_state {
	C_DOWN,	   /* not connected: the receiver is (re)connecting */
	C_UP,	   /* requests go out as they come */
	C_CLOSING, /* CLOSE sent: the receiver reads its status, then ends */
	C_GONE,	   /* finished, or (urgent) not offered by this server */
};

struct req {
	struct ps_req pub;
	struct conn *conn;
	uint8_t *buf;
	uint64_t cap;	   /* pages BUF holds */
	uint64_t hw;	   /* most bytes of its answer read in any attempt (the receiver's) */
	struct req *next;  /* FIFO of its connection, done queue, or free list */
	struct req *iprev; /* in-flight list: the loop's view */
	struct req *inext;
};

struct conn {
	struct remote *r;
	const char *name;
	bool urgent;
	bool probe; /* urgent: a first connection that may be refused */
	bool started;
	pthread_t thr;
	int wake; /* eventfd: the receiver, idle, looks at stop and closing again */

	/*
	 * Writes to ch, and its replacement or close; taken before mu, never under it, so
	 * a send that blocks (a peer that stopped reading) holds up no one who only needs
	 * the queue or the state, the receiver's stop and deadline checks among them.
	 */
	pthread_mutex_t send_mu;

	/*
	 * Start of the current span without progress (an answer completed, or a page of
	 * one read beyond what any earlier attempt got). --reconnect-timeout bounds that
	 * span, not each connection: a server that accepts and fails again, stalls or
	 * trickles must not keep the restored tasks frozen forever. Atomic: the loop
	 * starts the clock when it asks an idle connection for something.
	 */
	uint64_t since_ns;

	/* Under mu: */
	pthread_mutex_t mu;
	struct chan ch;
	enum conn_state state;
	struct req *head, *tail;
	bool stop;    /* end now */
	bool closing; /* end well: CLOSE once every answer is in, then read the status */
	uint64_t lost_ns;
	char lost_why[256];
	bool ever_up;

	/* The receiver's alone: bytes read while nothing was owed (the next answer's start). */
	uint8_t pre[PS_HDR_MAX];
	size_t pre_len;
	/* Since the last progress (the receiver's): */
	unsigned int losses;	 /* connections lost */
	unsigned int backoff_ms; /* wait before reconnecting: lost again at once is no way on */
	uint64_t idle_bytes;	 /* bytes read */
	uint64_t log_ns;	 /* a loss last logged */
	bool loss_logged;	 /* the current loss was */
};

struct remote {
	const struct crimg *img;
	struct remote_opts o;
	enum ps_layout layout;
	struct tls_creds *creds;
	char peer[300];
	struct addrinfo *ai;
	int efd;
	struct conn conns[2]; /* main, urgent */
	bool urgent_started;

	pthread_mutex_t mu; /* the done queue and the failure */
	struct req *done_head, *done_tail;
	bool failed;
	char fail_msg[1024];

	/* The loop's alone: */
	uint8_t *arena;
	size_t arena_len;
	struct req *reqs;
	size_t nr_reqs;
	struct req *free_bulk, *free_urgent;
	unsigned int bulk_busy;
	struct req *inflight;
	struct remote_stats st;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t timeout_ns(const struct remote *r)
{
	return (uint64_t)(r->o.reconnect_timeout * 1e9);
}

static uint64_t conn_since(struct conn *c)
{
	return __atomic_load_n(&c->since_ns, __ATOMIC_RELAXED);
}

static void conn_set_since(struct conn *c, uint64_t now)
{
	__atomic_store_n(&c->since_ns, now, __ATOMIC_RELAXED);
}

/* The receiver saw progress: the clock and the reconnect backoff start again. */
static void conn_progress(struct conn *c, uint64_t now)
{
	conn_set_since(c, now);
	c->losses = 0;
	c->backoff_ms = 0;
	c->idle_bytes = 0;
}

static void notify(struct remote *r)
{
	uint64_t one = 1;

	if (write(r->efd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; the loop drains it. */
	}
}

/* The receiver found the source unusable for good: say why once, wake the loop. */
static void fail(struct remote *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct remote *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->mu);
	if (!r->failed) {
		r->failed = true;
		va_start(ap, fmt);
		vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&r->mu);
	notify(r);
}

static int set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -errno : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) ? -errno : 0;
}

/* A TCP connect to AI within TIMEOUT_MS: the fd, or -errno. */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd p;
	int fd, ret, err = 0;
	socklen_t len = sizeof(err);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (ret && errno == EINPROGRESS) {
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		ret = poll(&p, 1, timeout_ms);
		if (ret == 0)
			err = ETIMEDOUT;
		else if (ret < 0)
			err = errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
	} else if (ret) {
		err = errno;
	}
	if (err) {
		close(fd);
		return -err;
	}
	return fd;
}

/* A connected socket made ready for requests: options, and TLS if asked for. */
static int chan_setup(struct remote *r, struct chan *ch, int fd, int timeout_ms, char *why, size_t why_len)
{
	struct timeval tv = {.tv_sec = 10};
	struct linger reset_on_close = {.l_onoff = 1, .l_linger = 0};
	int ret, one = 1;

	set_blocking(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Requests are small; a send that cannot go out in 10 s means a dead peer. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/*
	 * Every end but a clean one (chan_close after CLOSE's answer) resets the
	 * connection, our death included: `criu dump --lazy-pages` takes an EOF for a
	 * finished transfer and kills the dumped tree, a reset for a failed one and lets
	 * it run on. A restore that did not get all of its memory must not cost the source.
	 */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
	ch->fd = fd;
	if (r->creds) {
		ret = chan_tls_start(ch, r->creds, false, r->o.address, timeout_ms, why, why_len);
		if (ret) {
			close(fd);
			ch->fd = -1;
			return ret;
		}
	}
	return 0;
}

/*
 * One TCP connect (and TLS handshake) within TIMEOUT_MS; the fd, or -errno with WHY.
 * Every address the name has is tried in turn (a name may resolve to ::1 first for a
 * server listening on 127.0.0.1 only), each with an equal share of the time left.
 */
static int dial(struct remote *r, struct chan *ch, int timeout_ms, char *why, size_t why_len)
{
	uint64_t end = mono_ns() + (uint64_t)timeout_ms * 1000000;
	const struct addrinfo *ai;
	int fd = -ENOENT, n = 0, left;
	size_t off = 0;

	ch->fd = -1;
	ch->tls = NULL;
	for (ai = r->ai; ai; ai = ai->ai_next)
		n++;
	why[0] = 0;
	for (ai = r->ai; ai; ai = ai->ai_next, n--) {
		uint64_t now = mono_ns();
		char host[64];

		left = now < end ? (int)((end - now) / 1000000 / n) : 0;
		fd = connect_one(ai, left > 50 ? left : 50);
		if (fd >= 0)
			break;
		if (r->ai->ai_next && off < why_len) {
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0, NI_NUMERICHOST))
				snprintf(host, sizeof(host), "?");
			off += snprintf(why + off, why_len - off, "%s%s: %s", off ? "; " : "connect: ", host,
					strerror(-fd));
		} else if (off < why_len) {
			snprintf(why, why_len, "connect: %s", strerror(-fd));
		}
	}
	if (fd < 0)
		return fd;
	return chan_setup(r, ch, fd, timeout_ms, why, why_len);
}

static int send_hdr(struct remote *r, struct chan *ch, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t id)
{
	struct ps_hdr h = {.cmd = cmd, .nr_pages = nr, .vaddr = vaddr, .dst_id = id};
	uint8_t buf[PS_HDR_MAX];

	ps_hdr_encode(r->layout, &h, buf);
	return chan_send_all(ch, buf, ps_hdr_size(r->layout), false);
}

/* Our page server's handshake on the urgent channel. */
static int hello(struct remote *r, struct chan *ch, char *why, size_t why_len)
{
	uint8_t buf[PS_HDR_MAX];
	struct ps_hdr h;
	int ret;

	ret = send_hdr(r, ch, PS_IOV_LU_HELLO, 1, 0, 0);
	if (!ret)
		ret = chan_recv_all(ch, buf, ps_hdr_size(r->layout), HELLO_TIMEOUT_MS);
	if (ret) {
		snprintf(why, why_len, "no answer to our hello: %s",
			 ret == -EPIPE ? "connection closed" : strerror(-ret));
		return ret;
	}
	ps_hdr_decode(r->layout, buf, &h);
	if (h.cmd != PS_IOV_LU_HELLO) {
		snprintf(why, why_len, "answered our hello with command 0x%x", h.cmd);
		return -EPROTO;
	}
	return 0;
}

static bool conn_stopping(struct conn *c)
{
	bool stop;

	pthread_mutex_lock(&c->mu);
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

/* The main connection of a --ps-socket: our caller made it, and we cannot make another. */
static bool conn_fixed(const struct conn *c)
{
	return !c->urgent && c->r->o.ps_socket >= 0;
}

/*
 * The connection broke: close it; the receiver reconnects. Takes send_mu and mu. A
 * server that accepts and fails again at once must not fill the log: after the first
 * loss, one line per LOG_EVERY_NS.
 */
static void conn_lost(struct conn *c, const char *why)
{
	struct remote *r = c->r;
	uint64_t now = mono_ns();

	c->pre_len = 0;
	/* Wakes a send blocked on a peer that does not read, so send_mu comes free. */
	chan_shutdown(&c->ch);
	pthread_mutex_lock(&c->send_mu);
	pthread_mutex_lock(&c->mu);
	if (c->state == C_UP || c->state == C_CLOSING) {
		chan_close(&c->ch, false);
		c->state = C_DOWN;
		c->lost_ns = now;
		snprintf(c->lost_why, sizeof(c->lost_why), "%s", why);
		c->losses++;
		/* Nothing was owed: idle time was no stall, the clock starts now. */
		if (!c->head)
			conn_set_since(c, now);
		c->loss_logged = false;
		if (!c->stop && !c->closing && (!c->log_ns || now - c->log_ns >= LOG_EVERY_NS)) {
			c->log_ns = now;
			c->loss_logged = true;
			if (conn_fixed(c))
				pr_warn("page server %s: %s connection (--ps-socket %d) lost (%s); it cannot be "
					"re-established: the page server is gone",
					r->peer, c->name, r->o.ps_socket, why);
			else if (c->losses == 1)
				pr_warn("page server %s: %s connection lost (%s); reconnecting (%.0f s "
					"without progress fails the restore)",
					r->peer, c->name, why, r->o.reconnect_timeout);
			else
				pr_warn("page server %s: %s connection lost again (%s): %u times, no progress for "
					"%.1f s",
					r->peer, c->name, why, c->losses, (now - conn_since(c)) / 1e9);
		}
	}
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->send_mu);
}

/* No progress for the reconnect timeout: fail the source, saying what was seen. */
static void conn_give_up(struct conn *c)
{
	struct remote *r = c->r;
	char seen[400];

	if (c->losses)
		snprintf(seen, sizeof(seen), "the connection was lost %u time%s (last: %s), re-established each time",
			 c->losses, c->losses > 1 ? "s" : "", c->lost_why);
	else if (c->idle_bytes)
		snprintf(seen, sizeof(seen),
			 "%llu bytes came in that time, not one page more than before (a stalled or "
			 "trickling server)",
			 (unsigned long long)c->idle_bytes);
	else
		snprintf(seen, sizeof(seen), "no data from the server");
	fail(r, "page server %s: %s connection made no progress for %.0f s (--reconnect-timeout): %s", r->peer, c->name,
	     r->o.reconnect_timeout, seen);
}

/* A loss without progress since the last: the next attempt waits longer, up to a limit. */
static void conn_backoff(struct conn *c)
{
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 20;
	if (c->backoff_ms > MAX_BACKOFF_MS)
		c->backoff_ms = MAX_BACKOFF_MS;
}

/* Sleep MS, noticing a stop every 100 ms. */
static int conn_nap(struct conn *c, unsigned int ms)
{
	while (ms) {
		unsigned int step = ms < 100 ? ms : 100;

		if (conn_stopping(c))
			return -ECANCELED;
		usleep(step * 1000);
		ms -= step;
	}
	return conn_stopping(c) ? -ECANCELED : 0;
}

/*
 * (Re)connect until it works or the deadline passes. On success every request still
 * unanswered goes out again, oldest first, so answers keep matching requests in order.
 */
static int conn_connect(struct conn *c)
{
	struct remote *r = c->r;
	uint64_t deadline = conn_since(c) + timeout_ns(r);
	unsigned int delay = 20, attempts = 0;
	bool dial_failed = false, was_up, probing;
	char why[512] = "";

	if (conn_fixed(c)) {
		fail(r, "page server %s: the --ps-socket connection was lost (%s) and cannot be re-established",
		     r->peer, c->lost_why);
		return -ENOTCONN;
	}
	/* Lost again without progress: space the attempts out (rate-limits a reconnect loop). */
	if (c->backoff_ms) {
		uint64_t now = mono_ns();
		uint64_t left_ms = now < deadline ? (deadline - now) / 1000000 : 0;

		if (conn_nap(c, c->backoff_ms < left_ms ? c->backoff_ms : (unsigned int)left_ms))
			return -ECANCELED;
	}
	for (;;) {
		uint64_t now = mono_ns();
		int left = now < deadline ? (int)((deadline - now) / 1000000) : 0;
		struct chan ch;
		struct req *q;
		int ret;

		if (conn_stopping(c))
			return -ECANCELED;
		if (now >= deadline) {
			if (!dial_failed)
				conn_give_up(c);
			else if (c->ever_up)
				fail(r,
				     "page server %s: %s connection lost (%s) and not re-established: no progress for "
				     "%.0f s (--reconnect-timeout; %u attempts, last: %s)",
				     r->peer, c->name, c->lost_why, r->o.reconnect_timeout, attempts, why);
			else
				fail(r,
				     "page server %s: %s connection could not be made within %.0f s (%u attempts; "
				     "last: %s)",
				     r->peer, c->name, r->o.reconnect_timeout, attempts, why);
			return -ETIMEDOUT;
		}
		attempts++;
		ret = dial(r, &ch, left < 1000 ? (left > 50 ? left : 50) : (left < 5000 ? left : 5000), why,
			   sizeof(why));
		if (!ret && c->urgent)
			ret = hello(r, &ch, why, sizeof(why));
		dial_failed = ret != 0;
		if (!ret) {
			/*
			 * send_mu held over the re-sends keeps new requests behind them (the
			 * loop's remote_get waits for it); the queue cannot change meanwhile, as
			 * only the loop appends, under send_mu, and only this thread removes.
			 */
			pthread_mutex_lock(&c->send_mu);
			pthread_mutex_lock(&c->mu);
			c->ch = ch;
			c->state = C_UP;
			was_up = c->ever_up;
			/* The loop reads it (remote_has_urgent): under mu, with the state. */
			c->ever_up = true;
			q = c->head;
			pthread_mutex_unlock(&c->mu);
			for (; q && !ret; q = q->next)
				ret = send_hdr(r, &c->ch, PS_IOV_GET, q->pub.nr_pages, q->pub.img_addr, q->pub.vpid);
			pthread_mutex_unlock(&c->send_mu);
			if (ret) {
				snprintf(why, sizeof(why), "sending requests after reconnecting failed: %s",
					 strerror(-ret));
				conn_lost(c, why);
				conn_backoff(c);
				now = mono_ns();
				left = now < deadline ? (int)((deadline - now) / 1000000) : 0;
				if (conn_nap(c, (int)c->backoff_ms < left ? c->backoff_ms : (unsigned int)left))
					return -ECANCELED;
				continue;
			}
			if (was_up) {
				pthread_mutex_lock(&r->mu);
				r->st.reconnects++;
				pthread_mutex_unlock(&r->mu);
				if (c->loss_logged)
					pr_warn("page server %s: %s connection re-established after %.3f s", r->peer,
						c->name, (mono_ns() - c->lost_ns) / 1e9);
				conn_backoff(c);
			}
			return 0;
		}
		if (ch.fd >= 0 || ch.tls)
			chan_close(&ch, false);
		pthread_mutex_lock(&c->mu);
		probing = c->probe; /* the loop clears it (remote_has_urgent) */
		pthread_mutex_unlock(&c->mu);
		if (probing) {
			pr_info("page server %s: no second connection (%s): faults share the main one", r->peer, why);
			return -ENOTCONN;
		}
		if (ret == -EACCES) {
			fail(r, "page server %s: %s", r->peer, why);
			return ret;
		}
		if (mono_ns() >= deadline)
			continue; /* said at the top */
		pr_debug("page server %s: %s connection attempt %u: %s", r->peer, c->name, attempts, why);
		now = mono_ns();
		left = now < deadline ? (int)((deadline - now) / 1000000) : 0;
		if (conn_nap(c, (int)delay < left ? delay : (unsigned int)left))
			return -ECANCELED;
		if (delay < MAX_RETRY_DELAY_MS)
			delay *= 2;
	}
}

/*
 * Read LEN bytes of the answer to Q, POS bytes of which are in already, waking every
 * TICK_MS to notice a stop. Nothing arriving for half the reconnect timeout counts as a
 * lost connection (a dead path is worth a new one while time is left); no progress for
 * all of it (bytes or not) is -ETIME: the source has failed.
 */
static int recv_exact(struct conn *c, struct req *q, size_t pos, void *buf, size_t len)
{
	struct remote *r = c->r;
	uint64_t last = mono_ns(), limit = timeout_ns(r);
	uint8_t *p = buf;

	if (c->pre_len) {
		size_t k = c->pre_len < len ? c->pre_len : len;

		memcpy(p, c->pre, k);
		memmove(c->pre, c->pre + k, c->pre_len - k);
		c->pre_len -= k;
		p += k;
		len -= k;
		pos += k;
	}
	while (len) {
		ssize_t n = chan_recv(&c->ch, p, len, TICK_MS);
		uint64_t now = mono_ns();

		if (n == -ETIMEDOUT && conn_stopping(c))
			return -ECANCELED;
		/* Checked after bytes too: a server trickling faster than a tick is no better. */
		if (now - conn_since(c) > limit)
			return -ETIME;
		if (n == -ETIMEDOUT) {
			/* A connection that cannot be replaced waits out the whole timeout. */
			if (now - last > limit / 2 && !conn_fixed(c))
				return -ETIMEDOUT;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return (int)n;
		p += n;
		len -= n;
		pos += n;
		last = now;
		c->idle_bytes += n;
		/* Only pages no earlier attempt got count: a server failing mid-answer makes none. */
		if (pos / PAGE_SZ > q->hw / PAGE_SZ)
			conn_progress(c, now);
		if (pos > q->hw)
			q->hw = pos;
	}
	return 0;
}

static const char *recv_why(struct conn *c, int err, char *buf, size_t len)
{
	switch (err) {
	case -EPIPE:
		return "closed by the server";
	case -ETIMEDOUT:
		snprintf(buf, len, "no data from the server for %.1f s", c->r->o.reconnect_timeout / 2);
		return buf;
	case -EPROTO:
		snprintf(buf, len, "TLS error: %s", chan_tls_error(&c->ch));
		return buf;
	}
	return strerror(-err);
}

/*
 * The wire counts pages of the sender's size and says nothing of it: a server whose pages
 * are another size than ours sends more or fewer bytes than we read, and its next header
 * is read from page data: a header that is not one is said to have maybe that cause.
 */
#define PAGE_SIZE_HINT "; or the page server's page size is not ours (%llu bytes)"

/* Check the header answering Q; fails the source on a violation. */
static int check_answer(struct conn *c, struct req *q, const struct ps_hdr *h)
{
	struct remote *r = c->r;
	const struct ps_req *p = &q->pub;

	if (h->cmd == PS_REPLY_REFUSED && h->nr_pages == 0 && h->vaddr == p->img_addr &&
	    h->dst_id == (uint64_t)p->vpid) {
		fail(r,
		     "page server %s has no data for page 0x%llx of task %d (it refused our request for %llu pages "
		     "there): do the images on both sides come from the same dump?",
		     r->peer, (unsigned long long)p->img_addr, p->vpid, (unsigned long long)p->nr_pages);
		return -ENODATA;
	}
	if (h->cmd != PS_REPLY_PAGES) {
		fail(r,
		     "page server %s answered our request for %llu pages at 0x%llx of task %d with unknown command "
		     "0x%x (protocol violation; %s spoken" PAGE_SIZE_HINT ")",
		     r->peer, (unsigned long long)p->nr_pages, (unsigned long long)p->img_addr, p->vpid, h->cmd,
		     ps_layout_name(r->layout), PAGE_SZ);
		return -EPROTO;
	}
	if (h->vaddr != p->img_addr || h->dst_id != (uint64_t)p->vpid) {
		fail(r,
		     "page server %s sent pages at 0x%llx of task %llu for our request for %llu pages at 0x%llx of "
		     "task %d: not what was asked (protocol violation" PAGE_SIZE_HINT ")",
		     r->peer, (unsigned long long)h->vaddr, (unsigned long long)h->dst_id,
		     (unsigned long long)p->nr_pages, (unsigned long long)p->img_addr, p->vpid, PAGE_SZ);
		return -EPROTO;
	}
	if (h->nr_pages == 0 || h->nr_pages > p->nr_pages) {
		fail(r,
		     "page server %s announced %llu pages for our request for %llu pages at 0x%llx of task %d "
		     "(wrong length, protocol violation)",
		     r->peer, (unsigned long long)h->nr_pages, (unsigned long long)p->nr_pages,
		     (unsigned long long)p->img_addr, p->vpid);
		return -EPROTO;
	}
	return 0;
}

static void complete(struct remote *r, struct req *q)
{
	q->next = NULL;
	pthread_mutex_lock(&r->mu);
	if (r->done_tail)
		r->done_tail->next = q;
	else
		r->done_head = q;
	r->done_tail = q;
	pthread_mutex_unlock(&r->mu);
	notify(r);
}

/*
 * With nothing owed, wait a tick for the server: EOF means the connection is gone. Bytes
 * are kept for the next answer (a request may have gone out meanwhile); under TLS they
 * cannot be peeked at, so they are read in either case.
 */
static int idle_wait(struct conn *c)
{
	size_t want = ps_hdr_size(c->r->layout);
	struct pollfd p = {.fd = c->wake, .events = POLLIN};
	uint64_t v;
	ssize_t n;
	int ret;

	if (c->pre_len >= want) {
		if (poll(&p, 1, TICK_MS) > 0 && read(c->wake, &v, sizeof(v)) < 0) {
			/* Emptied by a read; EAGAIN: nothing to empty. */
		}
		return 0;
	}
	/* Woken by remote_close: the answers are all in, CLOSE can go now, not a tick later. */
	ret = chan_wait(&c->ch, c->wake, TICK_MS);
	if (ret < 0)
		return -EPIPE;
	if (!ret)
		return 0;
	n = chan_recv(&c->ch, c->pre + c->pre_len, want - c->pre_len, TICK_MS);
	if (n == -ETIMEDOUT)
		return 0;
	if (n <= 0)
		return -EPIPE;
	c->pre_len += n;
	return 0;
}

/*
 * After CLOSE (every answer in): the server's 4-byte status, then the end. On plain TCP
 * our FIN went out right behind CLOSE, and `criu dump --lazy-pages` ends well on CLOSE
 * then EOF whether or not we read its status. That status can sit in the source's send
 * queue behind a window our receiver filled, until the persist timer fires (~200 ms):
 * neither the source nor our exit waits for it then.
 */
static void session_end(struct conn *c)
{
	struct remote *r = c->r;
	int32_t status = -1;
	bool plain = !c->ch.tls, late;
	int ret = 0;

	if (c->pre_len >= sizeof(status)) {
		memcpy(&status, c->pre, sizeof(status));
	} else {
		uint8_t b[sizeof(status)];
		size_t have = c->pre_len;

		memcpy(b, c->pre, have);
		ret = chan_recv_all(&c->ch, b + have, sizeof(b) - have,
				    plain ? CLOSE_STATUS_WAIT_MS : CLOSE_STATUS_TIMEOUT_MS);
		memcpy(&status, b, sizeof(status));
	}
	c->pre_len = 0;
	late = plain && ret == -ETIMEDOUT;
	if (late)
		pr_debug("page server %s: %s connection: CLOSE sent, its status not in after %d ms: closing", r->peer,
			 c->name, CLOSE_STATUS_WAIT_MS);
	else if (ret || status)
		pr_warn("page server %s: %s connection: CLOSE answered with %s %d", r->peer, c->name,
			ret ? "error" : "status", ret ? ret : status);
	pthread_mutex_lock(&c->send_mu);
	pthread_mutex_lock(&c->mu);
	if (late)
		chan_close_sent(&c->ch);
	else
		chan_close(&c->ch, !ret);
	c->state = C_GONE;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->send_mu);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct remote *r = c->r;
	uint8_t hb[PS_HDR_MAX];
	char why[160];

	if (c->urgent)
		urgent_thread_priority("page server receiver (urgent channel)");
	for (;;) {
		struct req *q;
		struct ps_hdr h;
		enum conn_state st;
		bool bye;
		int ret;

		pthread_mutex_lock(&c->mu);
		st = c->state;
		q = c->head;
		if (c->stop || st == C_GONE || (st == C_DOWN && c->closing)) {
			c->state = C_GONE;
			pthread_mutex_unlock(&c->mu);
			break;
		}
		bye = c->closing && st == C_UP && !q;
		if (bye)
			c->state = C_CLOSING;
		pthread_mutex_unlock(&c->mu);
		if (bye) {
			/* Every answer is in: say goodbye (a lazy criu dump ends well only so). */
			st = C_CLOSING;
			pthread_mutex_lock(&c->send_mu);
			if (send_hdr(r, &c->ch, PS_IOV_CLOSE, 0, 0, 0))
				chan_shutdown(&c->ch);
			else if (!c->ch.tls)
				shutdown(c->ch.fd, SHUT_WR);
			pthread_mutex_unlock(&c->send_mu);
		}

		if (st == C_DOWN) {
			ret = conn_connect(c);
			if (ret) {
				pthread_mutex_lock(&c->mu);
				c->state = C_GONE;
				pthread_mutex_unlock(&c->mu);
				break;
			}
			continue;
		}
		if (!q) {
			if (st == C_CLOSING) {
				session_end(c);
				break;
			}
			if (idle_wait(c))
				conn_lost(c, "closed by the server");
			continue;
		}
		ret = recv_exact(c, q, 0, hb, ps_hdr_size(r->layout));
		if (ret == -ECANCELED)
			break;
		if (ret == -ETIME) {
			conn_give_up(c);
			break;
		}
		if (ret) {
			conn_lost(c, recv_why(c, ret, why, sizeof(why)));
			continue;
		}
		ps_hdr_decode(r->layout, hb, &h);
		if (check_answer(c, q, &h))
			break;
		ret = recv_exact(c, q, ps_hdr_size(r->layout), q->buf, h.nr_pages * PAGE_SZ);
		if (ret == -ECANCELED)
			break;
		if (ret == -ETIME) {
			conn_give_up(c);
			break;
		}
		if (ret) {
			conn_lost(c, recv_why(c, ret, why, sizeof(why)));
			continue;
		}
		q->pub.got = h.nr_pages;
		conn_progress(c, mono_ns());
		pthread_mutex_lock(&c->mu);
		c->head = q->next;
		if (!c->head)
			c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		complete(r, q);
	}
	return NULL;
}

static int conn_start(struct conn *c)
{
	int ret = pthread_create(&c->thr, NULL, conn_main, c);

	if (ret) {
		pr_err("cannot start the page server receiver: %s", strerror(ret));
		return -ret;
	}
	pthread_setname_np(c->thr, "lazy-uffd-recv");
	c->started = true;
	return 0;
}

/* --ps-socket: the peer's name for the log, from the socket itself. */
static void socket_peer(struct remote *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[64], port[16];

	if (getpeername(r->o.ps_socket, (struct sockaddr *)&ss, &len) ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(r->peer, sizeof(r->peer), "(--ps-socket %d)", r->o.ps_socket);
	else
		snprintf(r->peer, sizeof(r->peer), "%s%s%s:%s", strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "", port);
}

/* The main connection from --ps-socket, set up as one we dialled. */
static int adopt_socket(struct conn *c)
{
	struct remote *r = c->r;
	char why[256] = "";
	struct chan ch = {.fd = -1};
	int ret;

	ret = chan_setup(r, &ch, r->o.ps_socket, 5000, why, sizeof(why));
	if (ret) {
		fail(r, "page server %s: --ps-socket %d: %s", r->peer, r->o.ps_socket, why[0] ? why : strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&c->mu);
	c->ch = ch;
	c->state = C_UP;
	c->ever_up = true;
	pthread_mutex_unlock(&c->mu);
	pr_info("page server %s: using --ps-socket %d as the main connection (it cannot be re-established if "
		"lost)%s",
		r->peer, r->o.ps_socket,
		r->o.single_connection ? "" : "; the urgent connection is dialled to --address/--port");
	return 0;
}

static int lookup(struct remote *r)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	const char *host = r->o.address ? r->o.address : "127.0.0.1";
	char port[16];
	int ret;

	snprintf(port, sizeof(port), "%d", r->o.port);
	snprintf(r->peer, sizeof(r->peer), "%s%s%s:%d", strchr(host, ':') ? "[" : "", host,
		 strchr(host, ':') ? "]" : "", r->o.port);
	ret = getaddrinfo(host, port, &hints, &r->ai);
	if (ret) {
		pr_err("page server %s: %s", r->peer, gai_strerror(ret));
		return -EINVAL;
	}
	return 0;
}

static int make_slots(struct remote *r)
{
	size_t nb = r->o.bulk_depth, i, pages = nb * r->o.bulk_pages + URGENT_SLOTS * URGENT_SLOT_PAGES;
	uint8_t *p;

	r->arena_len = pages * PAGE_SZ;
	r->arena = mmap(NULL, r->arena_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->arena == MAP_FAILED) {
		r->arena = NULL;
		pr_err("cannot map %zu MiB of receive buffers: %m", r->arena_len >> 20);
		return -ENOMEM;
	}
	r->nr_reqs = nb + URGENT_SLOTS;
	r->reqs = calloc(r->nr_reqs, sizeof(*r->reqs));
	if (!r->reqs)
		return -ENOMEM;
	p = r->arena;
	for (i = 0; i < r->nr_reqs; i++) {
		struct req *q = &r->reqs[i];
		bool bulk = i < nb;

		q->buf = p;
		q->cap = bulk ? r->o.bulk_pages : URGENT_SLOT_PAGES;
		p += q->cap * PAGE_SZ;
		if (bulk) {
			q->next = r->free_bulk;
			r->free_bulk = q;
		} else {
			q->next = r->free_urgent;
			r->free_urgent = q;
		}
	}
	return 0;
}

int remote_open(struct remote **out, const struct crimg *img, const struct remote_opts *o)
{
	struct remote *r = calloc(1, sizeof(*r));
	size_t i;
	int ret;

	if (!r)
		return -ENOMEM;
	r->img = img;
	r->o = *o;
	r->efd = -1;
	pthread_mutex_init(&r->mu, NULL);
	r->layout = o->layout;
	if (!r->layout) {
		r->layout = PS_LAYOUT_41;
		for (i = 0; i < crimg_nr_tasks(img); i++) {
			const struct crimg_task *t = crimg_task(img, i);

			if (!t->zombie) {
				r->layout = t->encoding == CRIMG_PAGEMAP_42 ? PS_LAYOUT_42 : PS_LAYOUT_41;
				break;
			}
		}
	}
	for (i = 0; i < 2; i++) {
		struct conn *c = &r->conns[i];

		c->r = r;
		c->urgent = i == 1;
		c->name = i ? "urgent" : "main";
		c->ch.fd = -1;
		c->state = i ? C_GONE : C_DOWN;
		pthread_mutex_init(&c->mu, NULL);
		pthread_mutex_init(&c->send_mu, NULL);
		c->wake = -1;
	}
	*out = r;
	signal(SIGPIPE, SIG_IGN);
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (i = 0; i < 2 && r->efd >= 0; i++) {
		r->conns[i].wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (r->conns[i].wake < 0)
			break;
	}
	if (r->efd < 0 || i < 2) {
		pr_err("eventfd: %m");
		return -errno;
	}
	/* With --ps-socket, an address is for the urgent connection only, and only with --port. */
	if (o->ps_socket >= 0 && !o->port)
		r->o.single_connection = true;
	ret = o->port ? lookup(r) : 0;
	if (o->ps_socket >= 0)
		socket_peer(r);
	if (!ret)
		ret = make_slots(r);
	if (!ret && o->tls.on)
		ret = tls_creds_load(&r->creds, &o->tls);
	if (ret)
		return ret;
	/* The first connection, made here, so a wrong address fails before criu restore starts. */
	r->conns[0].lost_ns = mono_ns();
	conn_set_since(&r->conns[0], r->conns[0].lost_ns);
	ret = o->ps_socket >= 0 ? adopt_socket(&r->conns[0]) : conn_connect(&r->conns[0]);
	if (ret) {
		pr_err("%s", r->fail_msg);
		return ret;
	}
	pr_info("page server %s: connected, speaking %s%s", r->peer, ps_layout_name(r->layout),
		r->creds ? " over TLS" : "");
	return 0;
}

int remote_start(struct remote *r)
{
	return conn_start(&r->conns[0]);
}

int remote_fd(const struct remote *r)
{
	return r->efd;
}

static void start_urgent(struct remote *r)
{
	struct conn *c = &r->conns[1];

	r->urgent_started = true;
	if (r->o.single_connection)
		return;
	c->probe = true;
	c->state = C_DOWN;
	c->lost_ns = mono_ns();
	conn_set_since(c, c->lost_ns);
	if (conn_start(c))
		c->state = C_GONE;
}

bool remote_has_urgent(struct remote *r)
{
	struct conn *c = &r->conns[1];
	bool up;

	pthread_mutex_lock(&c->mu);
	/* Once it worked, a lost urgent connection is being restored: keep using it. */
	up = c->state == C_UP || (c->ever_up && c->state == C_DOWN);
	if (c->state == C_UP && c->probe)
		c->probe = false;
	pthread_mutex_unlock(&c->mu);
	return up;
}

bool remote_bulk_slot(struct remote *r)
{
	unsigned int depth = remote_has_urgent(r) ? r->o.bulk_depth : r->o.bulk_depth_shared;

	return r->free_bulk && r->bulk_busy < depth;
}

unsigned int remote_bulk_pages(const struct remote *r)
{
	return r->o.bulk_pages;
}

struct ps_req *remote_find(struct remote *r, pid_t vpid, uint64_t img_addr, bool urgent_only)
{
	struct req *q;

	for (q = r->inflight; q; q = q->inext)
		if (q->pub.vpid == vpid && img_addr >= q->pub.img_addr &&
		    img_addr < q->pub.img_addr + (q->pub.nr_pages << PAGE_SHIFT) && (!urgent_only || q->pub.urgent))
			return &q->pub;
	return NULL;
}

int remote_get(struct remote *r, pid_t vpid, uint64_t img_addr, uint64_t nr, bool urgent, struct ps_req **out)
{
	struct conn *c = &r->conns[urgent && remote_has_urgent(r) ? 1 : 0];
	struct req *q = urgent ? r->free_urgent : r->free_bulk;
	bool up;
	int ret = 0;

	if (!q)
		return -EBUSY;
	if (urgent)
		r->free_urgent = q->next;
	else
		r->free_bulk = q->next;
	if (nr > q->cap)
		nr = q->cap;
	memset(&q->pub, 0, sizeof(q->pub));
	q->pub.vpid = vpid;
	q->pub.img_addr = img_addr;
	q->pub.nr_pages = nr;
	q->pub.urgent = urgent;
	q->pub.data = q->buf;
	q->conn = c;
	q->next = NULL;
	q->iprev = NULL;
	q->inext = r->inflight;
	if (r->inflight)
		r->inflight->iprev = q;
	r->inflight = q;
	if (!urgent)
		r->bulk_busy++;
	r->st.requests++;
	if (urgent)
		r->st.urgent_requests++;

	q->hw = 0;

	pthread_mutex_lock(&c->send_mu);
	pthread_mutex_lock(&c->mu);
	/* An idle connection owed nothing: its clock starts with this request. */
	if (!c->head && c->state == C_UP)
		conn_set_since(c, mono_ns());
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	up = c->state == C_UP;
	pthread_mutex_unlock(&c->mu);
	if (up) {
		ret = send_hdr(r, &c->ch, PS_IOV_GET, nr, img_addr, (uint64_t)vpid);
		/* Wake the receiver: it notices, reconnects and sends this one again. */
		if (ret)
			chan_shutdown(&c->ch);
	}
	pthread_mutex_unlock(&c->send_mu);
	pr_debug("GET %llu pages at 0x%llx of task %d (%s)%s", (unsigned long long)nr, (unsigned long long)img_addr,
		 vpid, c->name, ret ? ": send failed, will be re-sent" : "");
	*out = &q->pub;
	return 0;
}

int remote_next(struct remote *r, struct ps_req **out)
{
	struct req *q, *prev;
	uint64_t junk;
	bool failed;

	if (read(r->efd, &junk, sizeof(junk)) < 0) {
		/* EAGAIN: nothing new signalled; the queue may still hold entries. */
	}
	pthread_mutex_lock(&r->mu);
	/* A fault's answer first: a thread waits for it; background answers can wait. */
	for (prev = NULL, q = r->done_head; q && !q->pub.urgent; prev = q, q = q->next)
		;
	if (!q) {
		prev = NULL;
		q = r->done_head;
	}
	if (q) {
		if (prev)
			prev->next = q->next;
		else
			r->done_head = q->next;
		if (r->done_tail == q)
			r->done_tail = prev;
	}
	failed = r->failed;
	pthread_mutex_unlock(&r->mu);
	if (q) {
		r->st.pages += q->pub.got;
		if (!q->conn->urgent && !r->urgent_started)
			start_urgent(r);
		/* More may be queued behind it: make sure the loop comes back. */
		notify(r);
		*out = &q->pub;
		return 1;
	}
	if (failed) {
		pr_err("%s", r->fail_msg);
		return -EIO;
	}
	*out = NULL;
	return 0;
}

void remote_release(struct remote *r, struct ps_req *p)
{
	struct req *q = (struct req *)p;

	if (q->iprev)
		q->iprev->inext = q->inext;
	else
		r->inflight = q->inext;
	if (q->inext)
		q->inext->iprev = q->iprev;
	q->iprev = q->inext = NULL;
	if (q->pub.urgent) {
		q->next = r->free_urgent;
		r->free_urgent = q;
	} else {
		q->next = r->free_bulk;
		r->free_bulk = q;
		r->bulk_busy--;
	}
}

size_t remote_describe_inflight(const struct remote *r, char *buf, size_t len)
{
	const struct req *q;
	size_t n = 0, off = 0;

	buf[0] = 0;
	for (q = r->inflight; q; q = q->inext, n++)
		if (n < 4 && off < len)
			off += snprintf(buf + off, len - off, "%s%llu pages at 0x%llx of task %d", n ? ", " : "",
					(unsigned long long)q->pub.nr_pages, (unsigned long long)q->pub.img_addr,
					q->pub.vpid);
	if (n > 4 && off < len)
		snprintf(buf + off, len - off, " and %zu more requests", n - 4);
	return n;
}

void urgent_thread_priority(const char *who)
{
	pid_t tid = gettid();
	int cur, want;

	errno = 0;
	cur = getpriority(PRIO_PROCESS, tid);
	if (errno) {
		pr_info("%s keeps its nice value: getpriority: %m", who);
		return;
	}
	want = cur - 10 < -20 ? -20 : cur - 10;
	/* Already at -20 (a daemon started so): nothing to raise, but say where it is. */
	if (want != cur && setpriority(PRIO_PROCESS, tid, want))
		pr_info("%s stays at nice %d: %m (a better one needs CAP_SYS_NICE)", who, cur);
	else
		pr_info("%s at nice %d (the background transfer's threads at %d)", who, want, cur);
}

const char *remote_peer(const struct remote *r)
{
	return r->peer;
}

void remote_get_stats(struct remote *r, struct remote_stats *st)
{
	/* The receivers still run: their counters and flags are theirs under the locks. */
	pthread_mutex_lock(&r->mu);
	*st = r->st;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_lock(&r->conns[1].mu);
	st->urgent_channel = r->conns[1].ever_up;
	pthread_mutex_unlock(&r->conns[1].mu);
	st->layout = r->layout;
	st->tls = r->creds != NULL;
}

static void conn_finish(struct conn *c, bool clean)
{
	uint64_t one = 1;

	pthread_mutex_lock(&c->mu);
	if (clean && c->state == C_UP) {
		/* The receiver takes the answers still owed, then sends CLOSE. */
		c->closing = true;
		if (write(c->wake, &one, sizeof(one)) < 0) {
			/* EAGAIN: a wake-up is pending already. */
		}
	} else {
		c->stop = true;
		chan_shutdown(&c->ch);
	}
	pthread_mutex_unlock(&c->mu);
	if (c->started)
		pthread_join(c->thr, NULL);
	c->started = false;
	pthread_mutex_lock(&c->send_mu);
	pthread_mutex_lock(&c->mu);
	if (c->ch.fd >= 0)
		chan_close(&c->ch, false);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->send_mu);
}

void remote_close(struct remote *r, bool clean)
{
	int i;

	if (!r)
		return;
	for (i = 1; i >= 0; i--)
		conn_finish(&r->conns[i], clean);
	for (i = 0; i < 2; i++) {
		pthread_mutex_destroy(&r->conns[i].mu);
		pthread_mutex_destroy(&r->conns[i].send_mu);
		if (r->conns[i].wake >= 0)
			close(r->conns[i].wake);
	}
	if (r->ai)
		freeaddrinfo(r->ai);
	tls_creds_free(r->creds);
	if (r->arena)
		munmap(r->arena, r->arena_len);
	free(r->reqs);
	if (r->efd >= 0)
		close(r->efd);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
