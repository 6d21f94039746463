// SPDX-License-Identifier: MIT
/*
 * lazy-pages.socket: the conversation with `criu restore --lazy-pages`.
 *
 * On the one accepted connection each task sends its vpid (int32) and then one byte
 * carrying its uffd (SCM_RIGHTS); a zombie sends -vpid alone; the restore master ends with
 * the finish word. The two parts of a task record are read separately, as they are sent.
 * SO_PASSCRED makes the kernel attach each sender's credentials, which tells us the host
 * pid of every restored task: what we need to stop a task that could not be served.
 *
 * Whoever connects first hands us uffds and, worse, decides which pages a process gets:
 * the socket is created mode 0600, and a peer whose uid (SO_PEERCRED) is neither ours nor
 * root is refused and logged, and the daemon goes on waiting for criu restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "../plugin/uffd_dev.h"
#include "handoff.h"
#include "lazy_pages.h"

#define LAZY_SOCKET_NAME "lazy-pages.socket"
#define FINISH_WORD	 0x52535446u

struct handoff {
	int listen_fd;
	int conn_fd;
	int dev_fd; /* UFFD_DEV_SOCKET, until criu restore connects; -1 without one */
};

/*
 * Does a listening socket have the file ST bound? Asked of sock_diag, which names each
 * listener's file by inode: connecting to find out would hand a waiting daemon an empty
 * connection in place of criu restore's, and it takes only one. 1 yes, 0 no, or -errno
 * when sock_diag cannot tell (no unix_diag in this kernel).
 */
static int listener_bound_to(const struct stat *st)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} rq = {
		.nlh = { .nlmsg_len = sizeof(rq), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.req = { .sdiag_family = AF_UNIX, .udiag_states = 1 << TCP_LISTEN, .udiag_show = UDIAG_SHOW_VFS },
	};
	/* The kernel's dev_t, as unix_diag reports it, not stat's encoding of it. */
	uint32_t kdev = (major(st->st_dev) << 20) | minor(st->st_dev);
	static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	int fd, left, ret = 0;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (send(fd, &rq, sizeof(rq), 0) != sizeof(rq)) {
		ret = -errno;
		goto out;
	}
	while (!done && !ret) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nh;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n ? -errno : -EIO;
			break;
		}
		/* An int: a length gone negative must end the walk, not wrap around. */
		left = (int)n;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			struct unix_diag_msg *m = NLMSG_DATA(nh);
			struct rtattr *a;
			int alen;

			if (nh->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nh);

				ret = e->error ? e->error : -EIO;
				break;
			}
			alen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
			for (a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				struct unix_diag_vfs v;

				if (a->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(a) < sizeof(v))
					continue;
				memcpy(&v, RTA_DATA(a), sizeof(v));
				if (v.udiag_vfs_ino == st->st_ino && v.udiag_vfs_dev == kdev) {
					ret = 1;
					goto out;
				}
			}
		}
	}
out:
	close(fd);
	return ret;
}

/* Without sock_diag: whoever answers a connection listens. */
static int listener_answers(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, len) ? 0 : 1;
	close(fd);
	return ret;
}

/*
 * What is at lazy-pages.socket may go, unless a daemon listens there: taking its name
 * would send the next criu restore here and leave that daemon waiting for ever.
 */
static int clear_socket_path(const char *shown, const struct sockaddr_un *sa, socklen_t len)
{
	struct stat st;
	int live;

	if (lstat(LAZY_SOCKET_NAME, &st)) {
		if (errno == ENOENT)
			return 0;
		pr_err("%s: %m", shown);
		return -errno;
	}
	if (S_ISSOCK(st.st_mode)) {
		live = listener_bound_to(&st);
		if (live < 0) {
			pr_warn("cannot ask sock_diag who listens on %s (%s); connecting to it instead, which "
				"costs a daemon there its restore",
				shown, strerror(-live));
			live = listener_answers(sa, len);
		}
		if (live > 0) {
			pr_err("%s: another daemon listens on it; give this one another work dir (-W)", shown);
			return -EADDRINUSE;
		}
	}
	if (unlink(LAZY_SOCKET_NAME) && errno != ENOENT) {
		pr_err("cannot remove stale %s: %m", shown);
		return -errno;
	}
	return 0;
}

/*
 * The device socket: a criu whose devices cgroup denies /dev/userfaultfd (a container
 * runtime put it there) gets an fd of it from us, opened out here; the cgroup checks
 * only the open. The same trust as lazy-pages.socket: mode 0600, and only our own uid
 * or root is answered. Not having it is no error: a criu that can open the node never asks.
 */
static int listen_device(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(UFFD_DEV_SOCKET);
	mode_t old_mask;
	int fd, ret;

	memcpy(sa.sun_path, UFFD_DEV_SOCKET, sizeof(UFFD_DEV_SOCKET));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (unlink(UFFD_DEV_SOCKET) && errno != ENOENT)
		goto fail;
	old_mask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, len);
	umask(old_mask);
	if (ret || listen(fd, 4))
		goto fail;
	pr_debug("handing out %s on %s to a criu that cannot open it", UFFD_DEV_PATH, UFFD_DEV_SOCKET);
	return fd;
fail:
	pr_warn("%s: %m; a criu confined by its devices cgroup cannot get %s from this daemon", UFFD_DEV_SOCKET,
		UFFD_DEV_PATH);
	if (fd >= 0)
		close(fd);
	return -1;
}

static void close_device(struct handoff *h)
{
	if (h->dev_fd < 0)
		return;
	close(h->dev_fd);
	h->dev_fd = -1;
	unlink(UFFD_DEV_SOCKET);
}

int handoff_listen(struct handoff **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char cwd[PATH_MAX], shown[PATH_MAX + sizeof(LAZY_SOCKET_NAME) + 1];
	struct handoff *h;
	mode_t old_mask;
	socklen_t len;
	int fd, dir_fd, ret, one = 1;

	/* Only for the messages: criu restore finds the socket by its relative name. */
	if (getcwd(cwd, sizeof(cwd)))
		snprintf(shown, sizeof(shown), "%s/%s", cwd, LAZY_SOCKET_NAME);
	else
		snprintf(shown, sizeof(shown), "%s", LAZY_SOCKET_NAME);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->conn_fd = -1;
	h->dev_fd = -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		pr_err("socket: %m");
		goto err;
	}
	memcpy(sa.sun_path, LAZY_SOCKET_NAME, sizeof(LAZY_SOCKET_NAME));
	len = offsetof(struct sockaddr_un, sun_path) + strlen(LAZY_SOCKET_NAME);
	/*
	 * Two of our daemons starting in one work dir at once would each find no listener
	 * and the second would take the first's name: the check and the bind are done
	 * under a lock on the directory. Best effort: not every filesystem has flock.
	 */
	dir_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd >= 0 && flock(dir_fd, LOCK_EX)) {
		close(dir_fd);
		dir_fd = -1;
	}
	ret = clear_socket_path(shown, &sa, len);
	if (ret)
		goto err_unlock;
	/*
	 * On the listener, so that accept() hands over a connection that has it already: a
	 * task that sent its uffd between our accept() and a setsockopt() on the new socket
	 * came without credentials (pid 0), and could not have been killed on failure.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		pr_warn("SO_PASSCRED: %m; restored tasks cannot be stopped by pid on failure");
	/* The mode comes from the umask at bind(); a chmod afterwards would leave a window. */
	old_mask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, len);
	umask(old_mask);
	if (ret || listen(fd, 10)) {
		ret = -errno;
		pr_err("cannot listen on %s: %m", shown);
		goto err_unlock;
	}
	/* Ours now, as the work dir's one live daemon: a device socket left here is stale. */
	h->dev_fd = listen_device();
	if (dir_fd >= 0)
		close(dir_fd);
	pr_info("listening on %s", shown);
	h->listen_fd = fd;
	*out = h;
	return 0;
err_unlock:
	if (dir_fd >= 0)
		close(dir_fd);
	close(fd);
err:
	free(h);
	return ret;
}

int handoff_listen_fd(const struct handoff *h)
{
	return h->listen_fd;
}

/* May this peer hand over uffds? Our own uid or root; else say who was refused. */
/* NAME is the socket, WHAT what a peer does there (for the refusal's message). */
static bool peer_allowed(int fd, const char *name, const char *what)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	uid_t me = geteuid();

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len)) {
		pr_err("SO_PEERCRED on %s: %m; connection refused", name);
		return false;
	}
	if (cr.uid == me || cr.uid == 0)
		return true;
	if (me == 0)
		pr_warn("refused a connection on %s from pid %d uid %u: only root may %s", name, (int)cr.pid,
			(unsigned)cr.uid, what);
	else
		pr_warn("refused a connection on %s from pid %d uid %u: only uid %u or root may %s", name,
			(int)cr.pid, (unsigned)cr.uid, (unsigned)me, what);
	return false;
}

int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)len ? 0 : (r < 0 ? -errno : -EPROTO);
}

/* One request on the device socket: the fd with a 0 byte, or our open's errno alone. */
static void give_device(int lfd)
{
	struct ucred cr = { 0 };
	socklen_t len = sizeof(cr);
	char byte = 0;
	int fd, dev, ret;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!peer_allowed(fd, UFFD_DEV_SOCKET, "ask for the device"))
		goto out;
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
	dev = uffd_dev_open(UFFD_DEV_PATH);
	if (dev < 0) {
		byte = (char)(-dev < 127 ? -dev : EIO);
		pr_err("pid %d asked for %s, which this daemon cannot open either: %s", (int)cr.pid, UFFD_DEV_PATH,
		       strerror(-dev));
	}
	ret = send_with_fd(fd, &byte, 1, dev);
	if (ret)
		pr_warn("handing %s to pid %d: %s", UFFD_DEV_PATH, (int)cr.pid, strerror(-ret));
	else if (dev >= 0)
		pr_info("handed %s to pid %d (criu restore, which could not open it itself)", UFFD_DEV_PATH,
			(int)cr.pid);
	if (dev >= 0)
		close(dev);
out:
	close(fd);
}

int handoff_accept(struct handoff *h)
{
	int fd;

	for (;;) {
		struct pollfd p[2] = { { .fd = h->listen_fd, .events = POLLIN }, { .fd = h->dev_fd, .events = POLLIN } };

		if (poll(p, h->dev_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("poll on %s: %m", LAZY_SOCKET_NAME);
			return -errno;
		}
		if (h->dev_fd >= 0 && p[1].revents)
			give_device(h->dev_fd);
		if (!p[0].revents)
			continue;
		fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0) {
			pr_err("accept on %s: %m", LAZY_SOCKET_NAME);
			return -errno;
		}
		if (peer_allowed(fd, LAZY_SOCKET_NAME, "hand over uffds"))
			break;
		close(fd);
	}
	/* Asked for, if at all, at criu's plugin init, which comes before this connection. */
	close_device(h);
	/* One restore per daemon, as with criu lazy-pages. */
	close(h->listen_fd);
	h->listen_fd = -1;
	h->conn_fd = fd;
	return fd;
}

/* Read exactly LEN bytes; 0 on EOF before the first byte, -EPIPE on EOF inside. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = recv(fd, (char *)buf + got, len - got, MSG_WAITALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return got ? -EPIPE : 0;
		got += r;
	}
	return got;
}

static int recv_uffd(int fd, int *uffd, pid_t *sender)
{
	union {
		char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} ctl;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	ssize_t r;

	*uffd = -1;
	*sender = 0;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -EPIPE;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(uffd, CMSG_DATA(c), sizeof(int));
		else if (c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;

			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			*sender = cr.pid;
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		if (*uffd >= 0)
			close(*uffd);
		return -EMSGSIZE;
	}
	return *uffd >= 0 ? 0 : -EBADMSG;
}

int handoff_read(struct handoff *h, bool expect_task, struct handoff_msg *m)
{
	int32_t word;
	ssize_t r;
	int ret;

	memset(m, 0, sizeof(*m));
	m->uffd = -1;
	r = read_full(h->conn_fd, &word, sizeof(word));
	if (r == 0 && !expect_task) {
		m->kind = HANDOFF_EOF;
		return 0;
	}
	if (r <= 0) {
		pr_err("criu restore closed %s before %s", LAZY_SOCKET_NAME,
		       expect_task ? "every task had sent its uffd" : "the restore finished");
		return r ? (int)r : -EPIPE;
	}
	if (!expect_task) {
		if ((uint32_t)word != FINISH_WORD) {
			pr_err("%s: expected the restore-finished word 0x%08x, got 0x%08x", LAZY_SOCKET_NAME,
			       FINISH_WORD, (uint32_t)word);
			return -EBADMSG;
		}
		m->kind = HANDOFF_FINISH;
		return 0;
	}
	if (word == INT32_MIN) {
		pr_err("%s: task record with pid %d", LAZY_SOCKET_NAME, word);
		return -EBADMSG;
	}
	if (word < 0) {
		m->kind = HANDOFF_ZOMBIE;
		m->vpid = -word;
		return 0;
	}
	if (word == 0) {
		pr_err("%s: task record with pid 0", LAZY_SOCKET_NAME);
		return -EBADMSG;
	}
	m->kind = HANDOFF_TASK;
	m->vpid = word;
	ret = recv_uffd(h->conn_fd, &m->uffd, &m->host_pid);
	if (ret) {
		pr_err("%s: no uffd arrived with task %d: %s", LAZY_SOCKET_NAME, word, strerror(-ret));
		return ret;
	}
	return 0;
}

void handoff_close(struct handoff *h)
{
	if (!h)
		return;
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	close_device(h);
	if (h->conn_fd >= 0)
		close(h->conn_fd);
	free(h);
}
