// SPDX-License-Identifier: MIT
/*
 * The guard: a second, minimal process that holds a copy of every uffd the daemon serves.
 *
 * If the daemon dies (SIGKILL, OOM, a bug) while a task still has pages to come, the
 * kernel would release its uffd, and from then on every missing page of that task reads
 * as zero: silent corruption. With the guard holding a copy the uffd stays alive, so a
 * faulting thread blocks instead of reading zeros; the guard sees the daemon go (EOF on
 * their socket: only the daemon holds the other end) and SIGKILLs the restored tree
 * (every task it was given a pidfd of, complete or not, forked children included, and
 * their descendants), waits until they are gone, and only then lets the uffds go.
 *
 * The daemon tells the guard when a task's memory is complete (its copy is closed, so a
 * later fault of that task, e.g. after MADV_DONTNEED, is the kernel's ordinary business)
 * and when the whole restore is complete (the guard exits without killing).
 *
 * Handing the uffds to a restarted daemon instead would keep the tree alive, but the new
 * daemon would have to learn which pages were already copied (UFFDIO_COPY of a present
 * page fails with EEXIST, so it could be rebuilt), and what REMOVE/UNMAP/REMAP events
 * the old one consumed and lost (it cannot): a page dropped by MADV_DONTNEED would be
 * filled again with old data. Killing is the answer that is always right.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"
#include "handoff.h"
#include "tree.h"
#include "lazy_pages.h"

enum guard_op {
	GUARD_HOLD = 1, /* + SCM_RIGHTS: the task's uffd */
	GUARD_PIDFD,	/* + SCM_RIGHTS: a pidfd naming the task's process */
	GUARD_RELEASE,	/* the task's memory is complete */
	GUARD_DONE,	/* every task is complete: exit, kill nobody */
};

struct guard_msg {
	uint32_t op;
	uint32_t id;
	int32_t vpid;
	int32_t host_pid;
	int32_t outer_ppid; /* GUARD_PIDFD: where the task's orphans may go */
	int32_t sid;	    /* GUARD_PIDFD: its session */
};

/* Where to look for a forked child the daemon had not found: reapers, in a session. */
struct seek {
	pid_t reaper;
	pid_t sid;
};

struct guard {
	int sock;
	pid_t pid;
};

struct held {
	uint32_t id;
	pid_t vpid;
	pid_t host_pid;
	int uffd; /* -1 once released */
};

/* How long the guard waits for a killed task to be gone before letting its uffd go. */
#define GUARD_KILL_WAIT_MS 10000

/*
 * Some task was incomplete when the daemon went: end the whole tree, complete tasks and
 * forked children included (README: a restored application is one unit, and a parent
 * left without its children, or children without data, is not worth keeping), then let
 * the uffds go only once they are gone: a thread on the other CPU must not get to run
 * again after its uffd is released.
 */
static void guard_kill_all(struct held *h, size_t nr, int **pidfds, size_t *nr_pidfds, const struct seek *sk,
			   size_t nr_sk)
{
	size_t i, j;

	for (i = 0; i < nr; i++) {
		if (h[i].uffd < 0)
			continue;
		if (h[i].host_pid > 0) {
			pr_err("guard: the daemon is gone with task %d (pid %d) incomplete: killing the restored tree",
			       h[i].vpid, h[i].host_pid);
			continue;
		}
		pr_err("guard: the daemon is gone with a child forked by task %d incomplete: killing the restored tree",
		       h[i].vpid);
		/*
		 * The daemon had not found its pid yet: its parent may have exited at once,
		 * leaving it to a reaper outside the tree. Look where the daemon would have.
		 */
		for (j = 0; j < nr_sk; j++) {
			pid_t *known = calloc(*nr_pidfds + 1, sizeof(*known)), pid = 0, reaper = sk[j].reaper;
			size_t k, nk = 0;
			int fd, *nfds;

			if (!known)
				break;
			for (k = 0; k < *nr_pidfds; k++) {
				pid_t p = tree_pidfd_pid((*pidfds)[k]);

				if (p > 0)
					known[nk++] = p;
			}
			fd = reaper > 1 ? tree_find_orphan(&reaper, 1, known, nk, sk[j].sid, &pid) : -1;
			free(known);
			if (fd < 0)
				continue;
			nfds = realloc(*pidfds, (*nr_pidfds + 1) * sizeof(*nfds));
			if (!nfds) {
				syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
				close(fd);
				continue;
			}
			*pidfds = nfds;
			(*pidfds)[(*nr_pidfds)++] = fd;
			pr_err("guard: pid %d, under pid %d with uffd-registered memory, is that child", (int)pid,
			       (int)reaper);
			break;
		}
	}
	pr_err("guard: killed %zu processes of the restored tree", tree_kill(*pidfds, *nr_pidfds, GUARD_KILL_WAIT_MS));
	for (i = 0; i < nr; i++)
		if (h[i].uffd >= 0)
			close(h[i].uffd);
}

/* Keep only what the guard needs: its socket and the log. Everything else (the listening
 * socket, --status-fd, page-server connections, image files) must not outlive the daemon
 * because of us. */
static void guard_close_fds(int keep1, int keep2)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int null;

	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		if (keep2 != STDIN_FILENO)
			dup2(null, STDIN_FILENO);
		if (keep2 != STDOUT_FILENO)
			dup2(null, STDOUT_FILENO);
		if (keep2 != STDERR_FILENO)
			dup2(null, STDERR_FILENO);
	}
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd <= STDERR_FILENO || fd == keep1 || fd == keep2 || fd == dirfd(dir))
			continue;
		close(fd);
	}
	closedir(dir);
}

static int guard_recv(int sock, struct guard_msg *m, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	ssize_t r;

	*fd = -1;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	if (r != sizeof(*m)) {
		if (*fd >= 0)
			close(*fd);
		return -EPROTO;
	}
	return 1;
}

static void __attribute__((noreturn)) guard_main(int sock, int log_fd)
{
	struct held *h = NULL;
	size_t nr = 0, cap = 0, i;
	int *pidfds = NULL;
	size_t nr_pidfds = 0, cap_pidfds = 0;
	struct seek *sk = NULL;
	size_t nr_sk = 0;
	struct guard_msg m;
	int fd, r;

	/* Only the daemon's death, not a signal meant for it or its terminal, ends us. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	setsid();
	guard_close_fds(sock, log_fd);

	for (;;) {
		r = guard_recv(sock, &m, &fd);
		if (r <= 0)
			break;
		switch (m.op) {
		case GUARD_HOLD:
			if (fd < 0)
				break;
			if (nr == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct held *nh = realloc(h, nc * sizeof(*nh));

				/* Cannot hold it: the daemon learns nothing, so kill now rather than
				 * leave a task unprotected. */
				if (!nh) {
					close(fd);
					pr_err("guard: out of memory holding task %d's uffd", m.vpid);
					goto kill;
				}
				h = nh;
				cap = nc;
			}
			h[nr++] = (struct held){ .id = m.id, .vpid = m.vpid, .host_pid = m.host_pid, .uffd = fd };
			break;
		case GUARD_PIDFD:
			if (fd < 0)
				break;
			if (nr_pidfds == cap_pidfds) {
				size_t nc = cap_pidfds ? cap_pidfds * 2 : 64;
				int *np = realloc(pidfds, nc * sizeof(*np));

				if (!np) {
					close(fd);
					pr_err("guard: out of memory holding task %d's pidfd", m.vpid);
					goto kill;
				}
				pidfds = np;
				cap_pidfds = nc;
			}
			pidfds[nr_pidfds++] = fd;
			for (i = 0; i < nr; i++)
				if (h[i].id == m.id)
					h[i].host_pid = m.host_pid;
			if (m.outer_ppid > 1 || m.sid > 0) {
				struct seek *ns = realloc(sk, (nr_sk + 1) * sizeof(*ns));

				if (ns) {
					sk = ns;
					sk[nr_sk++] = (struct seek){ .reaper = m.outer_ppid, .sid = m.sid };
				}
			}
			break;
		case GUARD_RELEASE:
			if (fd >= 0)
				close(fd);
			for (i = 0; i < nr; i++)
				if (h[i].id == m.id && h[i].uffd >= 0) {
					close(h[i].uffd);
					h[i].uffd = -1;
				}
			break;
		case GUARD_DONE:
			_exit(0);
		default:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
kill:
	for (i = 0; i < nr; i++)
		if (h[i].uffd >= 0)
			break;
	if (i < nr)
		guard_kill_all(h, nr, &pidfds, &nr_pidfds, sk, nr_sk);
	_exit(0);
}

int guard_start(struct guard **out)
{
	struct guard *g;
	int sv[2], ret;
	pid_t pid;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ret = -errno;
		pr_err("guard: socketpair: %m");
		goto err;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		pr_err("guard: fork: %m; refusing to serve without a guard for the restored tasks");
		close(sv[0]);
		close(sv[1]);
		goto err;
	}
	if (pid == 0) {
		close(sv[0]);
		guard_main(sv[1], log_fd());
	}
	close(sv[1]);
	g->sock = sv[0];
	g->pid = pid;
	*out = g;
	pr_debug("guard: pid %d holds a copy of every uffd until its task is complete", (int)pid);
	return 0;
err:
	free(g);
	return ret;
}

static int guard_send(struct guard *g, const struct guard_msg *m, int fd)
{
	return send_with_fd(g->sock, m, sizeof(*m), fd);
}

int guard_hold(struct guard *g, uint32_t id, pid_t vpid, pid_t host_pid, int uffd)
{
	struct guard_msg m = { .op = GUARD_HOLD, .id = id, .vpid = vpid, .host_pid = host_pid };
	int ret;

	if (!g)
		return 0;
	ret = guard_send(g, &m, uffd);
	if (ret)
		pr_err("guard: cannot hand task %d's uffd to the guard (pid %d): %s", vpid, (int)g->pid,
		       strerror(-ret));
	return ret;
}

int guard_pidfd(struct guard *g, uint32_t id, int pidfd, pid_t host_pid, pid_t outer_ppid, pid_t sid)
{
	struct guard_msg m = { .op = GUARD_PIDFD, .id = id, .host_pid = host_pid, .outer_ppid = outer_ppid, .sid = sid };
	int ret;

	if (!g)
		return 0;
	ret = guard_send(g, &m, pidfd);
	if (ret)
		pr_err("guard: cannot hand a pidfd to the guard (pid %d): %s", (int)g->pid, strerror(-ret));
	return ret;
}

void guard_release(struct guard *g, uint32_t id)
{
	struct guard_msg m = { .op = GUARD_RELEASE, .id = id };

	/* A guard that missed this keeps a complete task's uffd until the end: harmless. */
	if (g)
		guard_send(g, &m, -1);
}

void guard_close(struct guard *g, bool complete)
{
	struct guard_msg m = { .op = GUARD_DONE };

	if (!g)
		return;
	if (complete)
		guard_send(g, &m, -1);
	/* Without DONE the guard reads EOF here and kills whatever it still holds. */
	close(g->sock);
	/* Not our child any more after --daemon forked; then there is nothing to reap. */
	while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(g);
}
