/* SPDX-License-Identifier: MIT */
/*
 * lazy-pages.socket, criu restore's side of the daemon: listen (never taking over a socket
 * a live daemon listens on), accept criu's one connection (our uid or root only), and read
 * its messages: (pid, uffd) per task with the sender's host pid, zombies, the finish word.
 * Before criu connects it also hands a device fd to a confined criu's plugin on
 * lazy-uffd-device.socket (DESIGN.md).
 */
#ifndef LAZY_UFFD_HANDOFF_H
#define LAZY_UFFD_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct handoff;

/*
 * Create, bind and listen on lazy-pages.socket in the current directory, replacing a
 * file there only when no daemon listens on it (-EADDRINUSE, logged, if one does).
 */
int handoff_listen(struct handoff **out);
int handoff_listen_fd(const struct handoff *h);
/*
 * Accept criu restore's one connection; returns its fd for polling. The socket is mode
 * 0600; a peer whose SO_PEERCRED uid is neither ours nor root is logged and closed, and
 * the wait goes on.
 */
int handoff_accept(struct handoff *h);

enum handoff_msg_kind {
	HANDOFF_TASK,	/* a live task's uffd */
	HANDOFF_ZOMBIE, /* a zombie, nothing to serve */
	HANDOFF_FINISH, /* restore finished: the tasks are about to run */
	HANDOFF_EOF,	/* criu closed the connection after FINISH */
};

struct handoff_msg {
	enum handoff_msg_kind kind;
	pid_t vpid;
	pid_t host_pid; /* the sender, as the daemon's pid namespace sees it */
	int uffd;
};

/* One sendmsg of LEN bytes at BUF, with FD (SCM_RIGHTS) unless it is < 0: 0 or -errno. */
int send_with_fd(int sock, const void *buf, size_t len, int fd);
/* Read the next message; EXPECT_TASK says whether a task record or the finish word is due. */
int handoff_read(struct handoff *h, bool expect_task, struct handoff_msg *m);
void handoff_close(struct handoff *h);

#endif
