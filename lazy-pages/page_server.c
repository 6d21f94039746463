// SPDX-License-Identifier: MIT
/*
 * `lazy-uffd page-server`: serve the lazy pages of an image directory (parent chain
 * included) over CRIU's page-server protocol, to our daemon and to
 * `criu lazy-pages --page-server`, for any number of sessions, one after another or at
 * once (a thread each), so one dump can feed many restores.
 *
 * Each session's header layout (CRIU 4.1's 24 bytes or 4.2's 32) is told from its first
 * request. A GET for something that is not a lazy page with data in these images gets a
 * defined refusal (ADD_F, no flags, 0 pages, address and pid echoed) and the session goes
 * on; a command we do not know ends the session with a logged error. Nothing a client
 * sends makes the server hang or crash, and one session's trouble is its own.
 *
 * Clients cannot exhaust it either: sessions are capped (--max-sessions, by default also
 * by what the fd limit leaves room for) and one that sends nothing, or reads nothing of
 * an answer, for --idle-timeout is closed. A connection beyond the cap, or one that finds no fd, memory or thread for it,
 * is accepted and closed at once, so its client sees the refusal instead of waiting in
 * the backlog; the accept loop then backs off instead of spinning, and says so once a
 * minute at most.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "cli.h"
#include "pagesize.h"
#include "remote.h"
#include "lazy_pages.h"
#include "proto.h"

/* How long a client has to close after CLOSE was answered, or to finish a header. */
#define LINGER_MS 10000
/* Segments sent for one GET (each a run in one pages file); more makes a short answer. */
#define MAX_SEGS 256
/*
 * The most one GET may ask for: 1 GiB. Clients ask for far less (ours 1 MiB, CRIU's
 * lazy-pages what fits its 16 MiB pipe); a count beyond this is garbage or an attack.
 */
#define MAX_GET_PAGES (1ULL << 18)
/*
 * The pipe a plain-TCP session splices page data through. sendfile() goes through a
 * 16-page pipe of its own, so a 1 MiB answer took 16 rounds of file read, socket lock
 * and push; a pipe this size takes it in one.
 */
#define SPLICE_PIPE_BYTES (1 << 20)
/*
 * A session reads no request while it sends an answer, and CRIU's lazy-pages client
 * sends its requests on a non-blocking socket and gives up on EAGAIN ("Can't send PSI").
 * Requests are 24-32 bytes but each can cost a kilobyte of receive buffer (skb
 * truesize): the default buffer closes the window after some hundreds. Room for
 * thousands (set on the listening socket, so the window scale allows it).
 */
#define REQUEST_RCVBUF (4 << 20)
/*
 * Sessions at once unless --max-sessions says otherwise: a restore by our daemon takes two
 * (main and urgent), so this is a hundred restores or more from one dump, and 256 threads
 * and their pipes are well within what a machine serving dumps can afford.
 */
#define DEFAULT_MAX_SESSIONS 256
/* A session's fds: its socket and the splice pipe's two ends. */
#define FDS_PER_SESSION 3
/* Fds kept free beyond the sessions' share: the log, the spare fd, getaddrinfo's, TLS's. */
#define FD_MARGIN 16
/*
 * Idle seconds before a session is closed unless --idle-timeout says otherwise. Our
 * daemon connects before criu restore runs and its urgent channel can be quiet for long;
 * both reconnect by themselves, so this only has to be long against a restore's set-up.
 */
#define DEFAULT_IDLE_TIMEOUT_S 300
/* An --idle-timeout must fit a poll() timeout in milliseconds. */
#define MAX_IDLE_TIMEOUT_S (INT_MAX / 1000)
/* The accept loop's pause after running out of fds, memory or threads: it doubles to this. */
#define MAX_BACKOFF_MS 1000
/* A refusal, or a failing accept, is logged at most this often (per reason). */
#define LIMIT_LOG_INTERVAL_S 60
/* Connections refused in one go when out of fds (the spare fd trick): a bound, not a need. */
#define MAX_DRAIN 256
/*
 * The listen backlog: a burst of clients beyond it has its handshakes dropped and retried
 * one, three, seven seconds later, so the clients over the cap would hear of their
 * refusal late (or, once an idle session ends, get in late).
 */
#define LISTEN_BACKLOG 128

struct server {
	const struct crimg *img;
	struct tls_creds *creds;
	const char *address; /* for the TLS name check, as CRIU does */
	enum ps_layout fallback;

	unsigned int max_sessions;
	unsigned int idle_timeout_s; /* 0: never */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned int active;
	unsigned int next_id;
	unsigned int failed;
	unsigned int idle_closed;
	bool first_ended;
};

/* Why a connection was refused, or the accept loop paused; each is logged on its own clock. */
enum limit {
	LIMIT_SESSIONS,
	LIMIT_FDS,
	LIMIT_MEMORY,
	LIMIT_THREADS,
	LIMIT_ACCEPT, /* accept() failed in a way we do not know */
	LIMIT_NR,
};

struct limit_log {
	struct timespec last;
	bool said;
	unsigned long since; /* refusals (or failed accepts) since the last line */
};

/* The accept loop's state: only its thread touches it. */
struct acceptor {
	int lfd;
	int spare; /* an fd given up to accept and refuse a connection when out of fds; -1 */
	unsigned int backoff_ms;
	unsigned long refused;
	struct limit_log logs[LIMIT_NR];
};

struct session {
	struct server *srv;
	struct chan ch;
	unsigned int id;
	char peer[INET6_ADDRSTRLEN + 8];
	enum ps_layout layout;
	uint64_t requests, pages, refused;
	bool idled;  /* closed by us after --idle-timeout */
	int pipe[2]; /* plain TCP: see SPLICE_PIPE_BYTES; -1 until the first GET */
};

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
	stop_requested = 1;
}

struct seg {
	int fd;
	uint64_t off, nr;
};

static const char *why_not(const struct crimg_loc *loc)
{
	switch (loc->where) {
	case CRIMG_NOT_IN_IMAGE:
		return "outside every VMA of the task";
	case CRIMG_ZERO:
		return "a page the dump did not store (it reads as zero)";
	case CRIMG_REMOTE:
		return "a lazy-dump page: its data stayed with the dumping criu, these images do not have it";
	case CRIMG_PRESENT:
		break;
	}
	return "not a lazy page (criu restore fills it itself)";
}

static int send_hdr(struct session *s, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t dst, bool more)
{
	struct ps_hdr h = {.cmd = cmd, .nr_pages = nr, .vaddr = vaddr, .dst_id = dst};
	uint8_t buf[PS_HDR_MAX];

	ps_hdr_encode(s->layout, &h, buf);
	return chan_send_all(&s->ch, buf, ps_hdr_size(s->layout), more);
}

static int refuse(struct session *s, const struct ps_hdr *h, const char *why)
{
	pr_warn("session %u (%s): GET of %llu pages at 0x%llx of task %llu refused: %s", s->id, s->peer,
		(unsigned long long)h->nr_pages, (unsigned long long)h->vaddr, (unsigned long long)h->dst_id, why);
	s->refused++;
	return send_hdr(s, PS_REPLY_REFUSED, 0, h->vaddr, h->dst_id, false);
}

/* Send LEN bytes of FD at OFF through the session's pipe; MORE: data follows. */
static int splice_send(struct session *s, int fd, uint64_t off, uint64_t len, bool more)
{
	loff_t o = (loff_t)off;

	if (s->pipe[0] < 0) {
		if (pipe2(s->pipe, O_CLOEXEC))
			return -errno;
		/* A smaller pipe (pipe-max-size) only means more rounds. */
		fcntl(s->pipe[1], F_SETPIPE_SZ, SPLICE_PIPE_BYTES);
	}
	while (len) {
		ssize_t in = splice(fd, &o, s->pipe[1], NULL, len, SPLICE_F_MOVE), out;

		if (in < 0 && errno == EINTR)
			continue;
		/* A file system that cannot splice: sendfile() (or read and send) copes. */
		if (in < 0 && errno == EINVAL && o == (loff_t)off)
			return chan_send_file(&s->ch, fd, off, len);
		if (in < 0)
			return -errno;
		if (in == 0)
			return -ENODATA; /* the file is shorter than the image says */
		len -= in;
		while (in) {
			out = splice(s->pipe[0], NULL, s->ch.fd, NULL, in,
				     SPLICE_F_MOVE | (len || more ? SPLICE_F_MORE : 0));
			if (out < 0 && errno == EINTR)
				continue;
			/* Blocking: EAGAIN is SO_SNDTIMEO running out, a client that reads nothing. */
			if (out < 0 && errno == EAGAIN)
				return -ETIMEDOUT;
			if (out <= 0)
				return out < 0 ? -errno : -EPIPE;
			in -= out;
		}
	}
	return 0;
}

static int serve_get(struct session *s, const struct ps_hdr *h)
{
	const struct crimg *img = s->srv->img;
	const struct crimg_task *t = NULL;
	struct seg segs[MAX_SEGS];
	struct crimg_loc loc;
	struct crimg_error err;
	uint64_t addr = h->vaddr, served = 0;
	size_t nseg = 0, i;
	int ret;

	s->requests++;
	if (h->dst_id <= INT_MAX)
		t = crimg_find_task(img, (pid_t)h->dst_id);
	if (!t || t->zombie)
		return refuse(s, h, t ? "the task is a zombie" : "no such task in the images");
	if (h->vaddr % CRIMG_PAGE_SIZE)
		return refuse(s, h, "the address is not page aligned");
	if (!h->nr_pages)
		return refuse(s, h, "zero pages asked for");
	if (h->nr_pages > MAX_GET_PAGES)
		return refuse(s, h, "more pages asked for than one GET may (262144)");

	while (served < h->nr_pages && nseg < MAX_SEGS) {
		uint64_t n;

		ret = crimg_locate(img, t, addr, &loc, &err);
		if (ret) {
			if (!served)
				return refuse(s, h, err.msg);
			break;
		}
		if (loc.where != CRIMG_PRESENT || !(loc.flags & CRIMG_PE_LAZY)) {
			if (!served)
				return refuse(s, h, why_not(&loc));
			break;
		}
		n = loc.nr_pages < h->nr_pages - served ? loc.nr_pages : h->nr_pages - served;
		if (nseg && segs[nseg - 1].fd == loc.fd &&
		    segs[nseg - 1].off + segs[nseg - 1].nr * CRIMG_PAGE_SIZE == loc.off)
			segs[nseg - 1].nr += n;
		else
			segs[nseg++] = (struct seg){.fd = loc.fd, .off = loc.off, .nr = n};
		served += n;
		addr += n * CRIMG_PAGE_SIZE;
	}
	ret = send_hdr(s, PS_REPLY_PAGES, served, h->vaddr, h->dst_id, true);
	for (i = 0; !ret && i < nseg; i++) {
		if (s->ch.tls)
			ret = chan_send_file(&s->ch, segs[i].fd, segs[i].off, segs[i].nr * CRIMG_PAGE_SIZE);
		else
			ret = splice_send(s, segs[i].fd, segs[i].off, segs[i].nr * CRIMG_PAGE_SIZE, i + 1 < nseg);
	}
	if (ret == -ETIMEDOUT) {
		pr_info("session %u (%s): the client has read nothing for %u s (--idle-timeout): closing", s->id,
			s->peer, s->srv->idle_timeout_s);
		s->idled = true;
		return ret;
	}
	if (ret) {
		pr_err("session %u (%s): sending %llu pages at 0x%llx of task %d: %s", s->id, s->peer,
		       (unsigned long long)served, (unsigned long long)h->vaddr, t->pid, strerror(-ret));
		return ret;
	}
	s->pages += served;
	return 0;
}

/*
 * Which layout does this client speak? Its first request tells: read as 4.1, a GET has a
 * non-zero u32 count and then a pid; read as 4.2 those bytes are padding (zero from CRIU
 * and from us) and, at 16..23, a page-aligned address, which a pid hardly ever is. A first
 * CLOSE is taken as 4.1: a 4.2 client's 8 further bytes are then read before its EOF.
 */
static enum ps_layout detect_layout(struct session *s, const uint8_t *b)
{
	struct ps_hdr h41;
	uint32_t pad;

	ps_hdr_decode(PS_LAYOUT_41, b, &h41);
	memcpy(&pad, b + 4, 4);
	switch (h41.cmd & PS_CMD_MASK) {
	case PS_IOV_GET:
		if (!pad)
			return PS_LAYOUT_42;
		/* Read as 4.2, bytes 16..23 (4.1's pid) are the address: aligned, or not 4.2. */
		if (h41.dst_id % CRIMG_PAGE_SIZE)
			return PS_LAYOUT_41;
		if (h41.dst_id && h41.dst_id <= INT_MAX && crimg_find_task(s->srv->img, (pid_t)h41.dst_id))
			return PS_LAYOUT_41;
		return PS_LAYOUT_42;
	case PS_IOV_LU_HELLO:
		return pad ? PS_LAYOUT_41 : PS_LAYOUT_42;
	case PS_IOV_CLOSE:
	case PS_IOV_FORCE_CLOSE:
		return PS_LAYOUT_41;
	default:
		return s->srv->fallback;
	}
}

/* After CLOSE: the client closes first (CRIU waits for that); read until it does. */
static void linger(struct session *s)
{
	uint8_t junk[256];
	ssize_t n;

	do
		n = chan_recv(&s->ch, junk, sizeof(junk), LINGER_MS);
	while (n > 0);
}

/* Serve one connection; true if it ended well (CLOSE, or EOF between requests). */
static bool serve_session(struct session *s)
{
	unsigned int idle_s = s->srv->idle_timeout_s;
	int idle_ms = idle_s ? (int)idle_s * 1000 : -1;
	uint8_t buf[PS_HDR_MAX];
	bool first = true;
	int ret;

	for (;;) {
		struct ps_hdr h;
		ssize_t n;
		size_t want = first ? PS_LAYOUT_41 : ps_hdr_size(s->layout);

		/*
		 * Idle between requests up to --idle-timeout: a connection that holds a thread
		 * and fds and says nothing keeps a real restore out once the cap is reached.
		 */
		n = chan_recv(&s->ch, buf, want, idle_ms);
		if (n == -ETIMEDOUT) {
			pr_info("session %u (%s): nothing received for %u s (--idle-timeout): closing", s->id, s->peer,
				idle_s);
			s->idled = true;
			return true;
		}
		if (n == 0) {
			pr_info("session %u (%s): client closed the connection", s->id, s->peer);
			return true;
		}
		if (n < 0) {
			pr_err("session %u (%s): reading a request: %s", s->id, s->peer, strerror((int)-n));
			return false;
		}
		if ((size_t)n < want) {
			ret = chan_recv_all(&s->ch, buf + n, want - n, LINGER_MS);
			if (ret) {
				pr_err("session %u (%s): a request header was cut off: %s", s->id, s->peer,
				       ret == -EPIPE ? "connection closed" : strerror(-ret));
				return false;
			}
		}
		if (first) {
			first = false;
			s->layout = detect_layout(s, buf);
			if (s->layout == PS_LAYOUT_42) {
				ret = chan_recv_all(&s->ch, buf + PS_LAYOUT_41, PS_LAYOUT_42 - PS_LAYOUT_41, LINGER_MS);
				if (ret) {
					pr_err("session %u (%s): a request header was cut off", s->id, s->peer);
					return false;
				}
			}
			pr_info("session %u (%s): speaks %s", s->id, s->peer, ps_layout_name(s->layout));
		}
		ps_hdr_decode(s->layout, buf, &h);
		switch (h.cmd & PS_CMD_MASK) {
		case PS_IOV_GET:
			ret = serve_get(s, &h);
			if (ret)
				return s->idled;
			break;
		case PS_IOV_LU_HELLO:
			pr_info("session %u (%s): a lazy-uffd daemon's urgent channel", s->id, s->peer);
			urgent_thread_priority("urgent session");
			if (send_hdr(s, PS_IOV_LU_HELLO, 1, 0, 0, false))
				return false;
			break;
		case PS_IOV_CLOSE:
		case PS_IOV_FORCE_CLOSE: {
			int32_t status = 0;

			if (chan_send_all(&s->ch, &status, sizeof(status), false))
				return false;
			linger(s);
			pr_info("session %u (%s): closed by the client", s->id, s->peer);
			return true;
		}
		default:
			pr_err("session %u (%s): unknown command 0x%x (nr_pages %llu, vaddr 0x%llx, id %llu) in %s: "
			       "closing the session",
			       s->id, s->peer, h.cmd, (unsigned long long)h.nr_pages, (unsigned long long)h.vaddr,
			       (unsigned long long)h.dst_id, ps_layout_name(s->layout));
			return false;
		}
	}
}

static void *session_main(void *arg)
{
	struct session *s = arg;
	struct server *srv = s->srv;
	struct rusage ru;
	double cpu;
	bool ok = true;

	if (srv->creds) {
		char why[512];

		if (chan_tls_start(&s->ch, srv->creds, true, srv->address, LINGER_MS, why, sizeof(why))) {
			pr_err("session %u (%s): %s", s->id, s->peer, why);
			ok = false;
		}
	}
	if (ok)
		ok = serve_session(s);
	/* The session's own CPU time: what serving costs, next to what it moved. */
	getrusage(RUSAGE_THREAD, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	pr_info("session %u (%s): %llu requests, %llu pages served (%.1f MiB), %llu refused, %.3f s CPU%s", s->id,
		s->peer, (unsigned long long)s->requests, (unsigned long long)s->pages,
		s->pages * (double)PAGE_SZ / (1 << 20), (unsigned long long)s->refused, cpu,
		ok ? "" : "; ended by an error");
	/* An idle client need not be waited for to close its side. */
	chan_close(&s->ch, ok && !s->idled);
	if (s->pipe[0] >= 0) {
		close(s->pipe[0]);
		close(s->pipe[1]);
	}

	pthread_mutex_lock(&srv->mu);
	if (!ok)
		srv->failed++;
	if (s->idled)
		srv->idle_closed++;
	if (s->id == 1)
		srv->first_ended = true;
	srv->active--;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	free(s);
	return NULL;
}

static int listen_on(const char *address, int port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char portstr[16], host[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = -1, one = 1, ret;

	snprintf(portstr, sizeof(portstr), "%d", port);
	ret = getaddrinfo(address, portstr, &hints, &res);
	if (ret) {
		pr_err("--address %s: %s", address ? address : "(any)", gai_strerror(ret));
		return -EINVAL;
	}
	/* Non-blocking: connections are refused in a loop until none is left (refuse_pending). */
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		pr_err("socket: %m");
		goto err;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Beyond net.core.rmem_max needs CAP_NET_ADMIN; the capped size still helps. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){ REQUEST_RCVBUF }, sizeof(int)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ REQUEST_RCVBUF }, sizeof(int));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, LISTEN_BACKLOG)) {
		pr_err("cannot listen on %s port %d: %m", address ? address : "any address", port);
		goto err;
	}
	freeaddrinfo(res);
	if (!getsockname(fd, (struct sockaddr *)&ss, &len)) {
		int p;

		if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
			p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
			p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		}
		log_line(LOG_MSG, __FILE__, __LINE__, "page server listening on %s port %d", host, p);
	}
	return fd;
err:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -EIO;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	} else if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	}
	snprintf(out, len, "%s:%d", host, port);
}

static const char *limit_name(enum limit why)
{
	switch (why) {
	case LIMIT_SESSIONS:
		return "session cap";
	case LIMIT_FDS:
		return "out of file descriptors";
	case LIMIT_MEMORY:
		return "out of memory";
	case LIMIT_THREADS:
		return "cannot start a thread";
	default:
		return "accept failed";
	}
}

/*
 * One line for a refusal (or a failed accept) of kind WHY, unless one was said less than
 * LIMIT_LOG_INTERVAL_S ago: a flood of clients must not become a flood of log. The next
 * line counts what was not said.
 */
static void limit_hit(struct acceptor *a, enum limit why, const char *fmt, ...)
{
	struct limit_log *l = &a->logs[why];
	struct timespec now;
	char msg[256];
	va_list ap;

	l->since++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (l->said && now.tv_sec - l->last.tv_sec < LIMIT_LOG_INTERVAL_S)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->said)
		pr_warn("%s: %s (%lu times in the last %lld s; said at most once a minute)", limit_name(why), msg,
			l->since, (long long)(now.tv_sec - l->last.tv_sec));
	else
		pr_warn("%s: %s (said at most once a minute)", limit_name(why), msg);
	l->said = true;
	l->last = now;
	l->since = 0;
}

/* Refuse FD's client where it can see it: the connection closes at once. */
static void refuse_conn(struct acceptor *a, int fd)
{
	close(fd);
	a->refused++;
}

/*
 * Out of fds: give up the spare one to accept and refuse what waits in the backlog, so
 * those clients see a closed connection instead of hanging, and the listening socket
 * stops being readable (else poll() wakes at once, again and again). The count refused.
 */
static int refuse_pending(struct acceptor *a)
{
	int fd, n;

	if (a->spare < 0)
		return 0;
	close(a->spare);
	for (n = 0; n < MAX_DRAIN; n++) {
		fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			break;
		refuse_conn(a, fd);
	}
	/* A session may take the fd meanwhile: then no spare until one ends. */
	a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return n;
}

/* Wait BACKOFF_MS, or until a session ends and gives back what it held. */
static void back_off(struct server *srv, struct acceptor *a)
{
	struct timespec until;
	unsigned int before;

	a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : 10;
	if (a->backoff_ms > MAX_BACKOFF_MS)
		a->backoff_ms = MAX_BACKOFF_MS;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += (long)(a->backoff_ms % 1000) * 1000000;
	until.tv_sec += a->backoff_ms / 1000 + until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	pthread_mutex_lock(&srv->mu);
	before = srv->active;
	while (srv->active == before && !stop_requested &&
	       pthread_cond_timedwait(&srv->cv, &srv->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&srv->mu);
}

static unsigned int active_sessions(struct server *srv)
{
	unsigned int n;

	pthread_mutex_lock(&srv->mu);
	n = srv->active;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

/* accept() failed with ERR: refuse what can be refused, say why (rarely), pause if it helps. */
static void accept_failed(struct server *srv, struct acceptor *a, int err)
{
	struct rlimit rl = {0};
	int refused;

	switch (err) {
	case EINTR:
	case EAGAIN:
	case ECONNABORTED:
	/* accept(2): errors of the new connection's network, to be treated like EAGAIN. */
	case EPROTO:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
		return;
	case EMFILE:
	case ENFILE:
		getrlimit(RLIMIT_NOFILE, &rl);
		refused = refuse_pending(a);
		limit_hit(a, LIMIT_FDS,
			  "%s (fd limit %llu, %u sessions): refusing connections (closed at once) until sessions end",
			  strerror(err), (unsigned long long)rl.rlim_cur, active_sessions(srv));
		/* The backlog is empty now: poll() sleeps until the next client, no need to. */
		if (refused)
			return;
		break;
	case ENOMEM:
	case ENOBUFS:
		limit_hit(a, LIMIT_MEMORY, "accept: %s (%u sessions): pausing until sessions end", strerror(err),
			  active_sessions(srv));
		break;
	default:
		limit_hit(a, LIMIT_ACCEPT, "%s", strerror(err));
		break;
	}
	back_off(srv, a);
}

/* A thread for the session on FD from SS; 0, or -errno with FD closed (refused). */
static int start_session(struct server *srv, struct acceptor *a, int fd, const struct sockaddr_storage *ss)
{
	struct session *s;
	pthread_attr_t attr;
	pthread_t thr;
	int one = 1, rcv = 0, ret;
	socklen_t rl = sizeof(rcv);

	s = calloc(1, sizeof(*s));
	if (!s) {
		refuse_conn(a, fd);
		limit_hit(a, LIMIT_MEMORY, "no memory for a session (%u sessions): refusing connections",
			  active_sessions(srv));
		return -ENOMEM;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A client that asks and never reads would hold its session in a send forever. */
	if (srv->idle_timeout_s)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = srv->idle_timeout_s },
			   sizeof(struct timeval));
	s->srv = srv;
	s->ch.fd = fd;
	s->pipe[0] = s->pipe[1] = -1;
	s->layout = srv->fallback;
	peer_name(ss, s->peer, sizeof(s->peer));
	pthread_mutex_lock(&srv->mu);
	s->id = ++srv->next_id;
	srv->active++;
	pthread_mutex_unlock(&srv->mu);
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &rl);
	pr_info("session %u: connection from %s (receive buffer %d KiB)", s->id, s->peer, rcv / 1024);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&thr, &attr, session_main, s);
	pthread_attr_destroy(&attr);
	if (!ret)
		return 0;
	/* Threads (RLIMIT_NPROC, memory) ran out before the cap: a refusal, not a failure. */
	refuse_conn(a, fd);
	limit_hit(a, LIMIT_THREADS, "%s (%u sessions): refusing connections", strerror(ret), active_sessions(srv));
	pthread_mutex_lock(&srv->mu);
	srv->active--;
	pthread_mutex_unlock(&srv->mu);
	free(s);
	return -ret;
}

/* Accept until stopped (or, with ONCE, until the first client's connections are over). */
static int serve(struct server *srv, int lfd, bool once)
{
	struct acceptor a = {.lfd = lfd};
	int status;

	a.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (;;) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		unsigned int active;
		int fd, ret;

		pthread_mutex_lock(&srv->mu);
		if (once && srv->first_ended) {
			/* The first client's other connections (its urgent channel) may still run. */
			while (srv->active)
				pthread_cond_wait(&srv->cv, &srv->mu);
			pthread_mutex_unlock(&srv->mu);
			break;
		}
		pthread_mutex_unlock(&srv->mu);
		if (stop_requested)
			break;
		ret = poll(&p, 1, 100);
		if (ret <= 0)
			continue;
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (fd < 0) {
			accept_failed(srv, &a, errno);
			continue;
		}
		a.backoff_ms = 0;
		if (a.spare < 0)
			a.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		active = active_sessions(srv);
		if (active >= srv->max_sessions) {
			refuse_conn(&a, fd);
			limit_hit(&a, LIMIT_SESSIONS,
				  "%u sessions (--max-sessions): refusing connections (closed at once) until one ends",
				  active);
			continue;
		}
		start_session(srv, &a, fd, &ss);
	}
	if (a.spare >= 0)
		close(a.spare);
	pthread_mutex_lock(&srv->mu);
	status = srv->failed ? 1 : 0;
	pthread_mutex_unlock(&srv->mu);
	if (a.refused)
		pr_info("page server: %lu connections refused", a.refused);
	return status;
}

/* Fds open now, from /proc/self/fd; 0 if that cannot be read. */
static unsigned int fds_in_use(void)
{
	unsigned int n = 0;
	struct dirent *d;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return 0;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n > 0 ? n - 1 : 0; /* the directory's own */
}

/*
 * The session cap: --max-sessions, or by default as many as the fd limit leaves room for
 * (up to DEFAULT_MAX_SESSIONS), so the cap refuses clients before accept() runs out of fds.
 */
static unsigned int session_cap(unsigned int asked)
{
	struct rlimit rl;
	unsigned long long room = DEFAULT_MAX_SESSIONS, used = fds_in_use();

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		room = rl.rlim_cur > used + FD_MARGIN ? (rl.rlim_cur - used - FD_MARGIN) / FDS_PER_SESSION : 0;
	if (room < 1)
		room = 1;
	if (asked) {
		if (asked > room)
			pr_warn("--max-sessions %u: the fd limit (%llu, %llu in use) has room for about %llu; "
				"beyond that connections are refused for want of fds",
				asked, (unsigned long long)rl.rlim_cur, used, room);
		return asked;
	}
	if (room < DEFAULT_MAX_SESSIONS) {
		pr_info("at most %llu sessions at once: what the fd limit (%llu) has room for", room,
			(unsigned long long)rl.rlim_cur);
		return (unsigned int)room;
	}
	return DEFAULT_MAX_SESSIONS;
}

struct ps_cli {
	struct cli_common common; /* first: the shared tables' offsets count from here */
	const char *address;
	int port;
	bool once;
	unsigned int max_sessions, idle_timeout_s;
};

#define PS_CLI(field) offsetof(struct ps_cli, field)

_Static_assert(MAX_IDLE_TIMEOUT_S == 2147483, "--idle-timeout's range in its error text");

static const struct opt page_server_table[] = {
	{ OPT_INCLUDE, .include = cli_serve_opts },
	{ OPT_STR, "work-dir", 'W', "DIR", .help = "where the log and the pidfile go (default: the images dir)",
	  .off = PS_CLI(common.work_dir) },
	{ OPT_STR, "address", 0, "ADDR",
	  .help = "listen on ADDR (default: every address); with --tls the\n"
		  "clients' certificates must name ADDR, as with criu",
	  .off = PS_CLI(address) },
	{ OPT_INT, "port", 0, "PORT", .help = "TCP port (0 or none: the kernel picks one, printed at start)",
	  .off = PS_CLI(port), .max = 65535 },
	{ OPT_SET, "once", .help = "exit after the first client is done (status 0 if all went well)",
	  .off = PS_CLI(once) },
	{ OPT_UINT, "max-sessions", 0, "N",
	  .help = "sessions at once (default " OPTS_STR(DEFAULT_MAX_SESSIONS) ", or fewer if the fd limit has\n"
		  "room for fewer); a connection beyond them is closed at once",
	  .off = PS_CLI(max_sessions), .min = 1, .max = INT_MAX, .range = "a count, at least 1" },
	{ OPT_UINT, "idle-timeout", 0, "S",
	  .help = "close a session that has sent nothing, or read nothing\n"
		  "of an answer, for S seconds (default " OPTS_STR(DEFAULT_IDLE_TIMEOUT_S) "; 0: never)",
	  .off = PS_CLI(idle_timeout_s), .max = MAX_IDLE_TIMEOUT_S, .range = "seconds, 0 to 2147483" },
	{ OPT_INCLUDE, .include = cli_tls_opts },
	{ OPT_INCLUDE, .include = cli_config_opts },
	{},
};

static const struct opts_cmd page_server_cmd = {
	.name = "page-server",
	.usage = "usage: lazy-uffd %s -D DIR [--address ADDR] --port PORT [options]",
	.intro = "Serve the lazy pages of the dump in DIR (and its parent images) over CRIU's page-server\n"
		 "protocol: to `lazy-uffd daemon --page-server` and to `criu lazy-pages --page-server`,\n"
		 "CRIU 4.1 or 4.2 clients alike (told apart by their first request). Any number of\n"
		 "sessions, one after another or at once, so one dump can feed many restores. DIR is a\n"
		 "normal dump (lazy pages stored, flags 6), not a `criu dump --lazy-pages` directory.",
	.table = page_server_table,
};

/* The images opened and the server's state made ready to listen; 0, or -1 (logged). */
static int server_init(struct server *srv, struct ps_cli *c, const char *images, struct crimg **img)
{
	pthread_condattr_t cattr;
	struct crimg_error err;
	size_t i;

	if (crimg_open(images, img, &err)) {
		pr_err("%s", err.msg);
		return -1;
	}
	srv->img = *img;
	srv->address = c->address;
	srv->max_sessions = c->max_sessions;
	srv->idle_timeout_s = c->idle_timeout_s;
	for (i = 0; i < crimg_nr_tasks(srv->img); i++) {
		const struct crimg_task *t = crimg_task(srv->img, i);

		if (!t->zombie) {
			srv->fallback = t->encoding == CRIMG_PAGEMAP_42 ? PS_LAYOUT_42 : PS_LAYOUT_41;
			break;
		}
	}
	pthread_mutex_init(&srv->mu, NULL);
	/* The accept loop's back-off waits on it with a monotonic deadline. */
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cv, &cattr);
	pthread_condattr_destroy(&cattr);
	return 0;
}

/* Listen and serve until done; the exit status. */
static int listen_and_serve(struct server *srv, struct ps_cli *c)
{
	struct sigaction sa = { .sa_handler = on_term };
	int lfd, status;

	/*
	 * The pidfile is taken before the port, as the daemon does: a pidfile that exists
	 * means exit 1 with nothing left running, not a forked server nobody can name.
	 */
	if (cli_take_pidfile(&c->common))
		return 1;
	lfd = listen_on(c->address, c->port);
	if (lfd < 0)
		return 1;
	srv->max_sessions = session_cap(srv->max_sessions);
	if (cli_ready(&c->common)) {
		close(lfd);
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	status = serve(srv, lfd, c->once);
	pthread_mutex_lock(&srv->mu);
	pr_info("page server done: %u sessions, %u failed, %u closed when idle", srv->next_id, srv->failed,
		srv->idle_closed);
	if (srv->active) {
		/* Stopped by a signal while sessions run: they use the images until exit. */
		pthread_mutex_unlock(&srv->mu);
		close(lfd);
		if (c->common.log)
			fflush(c->common.log);
		_exit(status);
	}
	pthread_mutex_unlock(&srv->mu);
	close(lfd);
	return status;
}

int cmd_page_server(int argc, char **argv)
{
	struct server srv = { .fallback = PS_LAYOUT_41 };
	struct ps_cli c = { .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S };
	struct opts_run opts;
	struct crimg *img = NULL;
	char *images = NULL;
	int status;

	cli_init(&c.common);
	status = opts_parse(&page_server_cmd, argc, argv, &c, &opts);
	if (status >= 0)
		goto out;
	status = 2;
	if (!c.common.images_dir) {
		pr_err("-D/--images-dir is required");
		opts_usage(&page_server_cmd, stderr, argv[0]);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	status = 1;
	images = realpath(c.common.images_dir, NULL);
	if (!images) {
		pr_err("images dir %s: %m", c.common.images_dir);
		goto out;
	}
	/* Certificates are read before the chdir, so relative paths work too. */
	if (c.common.tls.on && tls_creds_load(&srv.creds, &c.common.tls))
		goto out;
	if (cli_enter_work_dir(&c.common, images) || cli_open_log(&c.common))
		goto out;
	pr_info("lazy-uffd %s: page server for %s", LAZY_UFFD_VERSION, images);
	if (server_init(&srv, &c, images, &img))
		goto out;
	status = listen_and_serve(&srv, &c);
out:
	cli_done(&c.common);
	tls_creds_free(srv.creds);
	crimg_close(img);
	free(images);
	opts_free(&opts);
	return status;
}
