// SPDX-License-Identifier: MIT
/*
 * uffd-events: the daemon's event paths, scripted without criu. In the manner of the
 * kernel's uffd selftests, a table of named cases; each plays criu restore's part: it
 * writes images (test/unit/imgwriter), starts `lazy-uffd daemon` on them, and forks a
 * task that maps the dump's memory, registers it with a uffd and hands the uffd over on
 * lazy-pages.socket exactly as a restored task does (vpid, then one byte with the fd).
 * The case then orders the events itself: forks, exits, layout changes while faults
 * wait, the daemon stopped (SIGSTOP) or killed (SIGKILL) at a chosen step.
 *
 *   uffd-events LAZY_UFFD CASE DIR    (DIR: a new directory; exit 0 pass, 1 fail, 77 skip)
 *   uffd-events --list
 *
 * Page data written by imgwriter starts with the page's own address (u64), so a page that
 * reads as zero where the dump had data is told apart from a good one.
 *
 * We are a child subreaper, as criu restore's process would be the first reaper above
 * the tree: orphans of the tree come to us, and we reap them.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/imgwriter.h"

#define PG	      4096ULL
#define VPID	      1
#define BASE	      0x600000000000ULL
#define FINISH_WORD   0x52535446u
/* The features criu asks for: FORK, REMAP, REMOVE, UNMAP. */
#define CRIU_FEATURES (UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

static const char *lazy_uffd, *dir;
static char img_dir[4096], work_dir[4096], log_path[4096];
static pid_t daemon_pid;
/* More of the daemon's arguments, for a case that needs them (NULL-terminated). */
static const char *daemon_extra[8];
static int conn = -1;
/* Set by a case that copies into its own memory: task_handover keeps the uffd here. */
static bool keep_task_uffd;
static int task_uffd = -1;
/* Every process a case started, killed at the end whatever the verdict. */
static pid_t spawned[8];
static size_t nr_spawned;

static pid_t track(pid_t pid)
{
	if (pid > 0 && nr_spawned < sizeof(spawned) / sizeof(spawned[0]))
		spawned[nr_spawned++] = pid;
	return pid;
}

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("uffd-events: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#define FAIL(...)                   \
	do {                        \
		say("FAIL: " __VA_ARGS__); \
		return 1;           \
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The dump: one private anonymous VMA of VMA_PAGES at BASE, lazy data in its first
 * DATA_PAGES, the rest a hole (never touched before the dump: zero pages on a fault). */
static uint64_t vma_pages, data_pages;

static int write_images(void)
{
	struct tw_vma vma = { BASE, BASE + vma_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0x201 };
	struct tw_pme pme = { BASE, data_pages, 2 | 4 /* PE_LAZY | PE_PRESENT */ };
	struct tw_task t = { .pid = VPID, .ppid = 0, .threads = { VPID }, .nr_threads = 1, .pages_id = 1,
			     .vmas = &vma, .nr_vmas = 1, .pmes = &pme, .nr_pmes = data_pages ? 1 : 0 };

	return tw_dump(img_dir, &t, 1, TW_41);
}

/* Start the daemon and wait for its ready byte. */
static int start_daemon_only(void)
{
	char b;
	int st[2];

	if (pipe2(st, O_CLOEXEC))
		return -1;
	daemon_pid = fork();
	if (daemon_pid < 0)
		return -1;
	if (!daemon_pid) {
		char fd[16];
		const char *argv[32] = { lazy_uffd, "daemon", "-D", img_dir, "-W", work_dir, "-o", log_path, "-v4",
					 "--status-fd", fd };
		size_t i, n = 11;

		dup2(st[1], 9);
		snprintf(fd, sizeof(fd), "%d", 9);
		for (i = 0; daemon_extra[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
			argv[n++] = daemon_extra[i];
		execv(lazy_uffd, (char **)argv);
		_exit(127);
	}
	close(st[1]);
	if (read(st[0], &b, 1) != 1) {
		say("the daemon exited before it was ready (see %s)", log_path);
		close(st[0]);
		return -1;
	}
	close(st[0]);
	return 0;
}

/* Connect to the daemon's lazy-pages.socket as criu restore does. */
static int connect_daemon(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int len = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lazy-pages.socket", work_dir);

	if (len < 0 || (size_t)len >= sizeof(sa.sun_path)) {
		say("%s/lazy-pages.socket: too long for a socket address", work_dir);
		return -1;
	}
	conn = socket(AF_UNIX, SOCK_STREAM, 0);
	if (conn < 0 || connect(conn, (struct sockaddr *)&sa, sizeof(sa))) {
		say("connect %s: %m", sa.sun_path);
		return -1;
	}
	return 0;
}

static int start_daemon(void)
{
	return start_daemon_only() || connect_daemon() ? -1 : 0;
}

/*
 * PTRACE_GET_SYSCALL_INFO's answer (linux/ptrace.h, which cannot be included beside
 * glibc's sys/ptrace.h; glibc 2.36 does not have it).
 */
#ifndef PTRACE_GET_SYSCALL_INFO
#define PTRACE_GET_SYSCALL_INFO 0x420e
#endif
struct syscall_info {
	uint8_t op; /* 1 entry, 2 exit */
	uint8_t pad[3];
	uint32_t arch;
	uint64_t ip, sp;
	union {
		struct {
			uint64_t nr, args[6];
		} entry;
		struct {
			int64_t rval;
			uint8_t is_error;
		} exit;
	};
};

/*
 * Start the daemon and connect as criu restore does, with the daemon held by ptrace at the
 * exit of the accept4() that takes the connection: the caller acts in that window, then
 * detaches.
 */
static int start_daemon_held(void)
{
	long nr = -1;
	int st;

	if (start_daemon_only())
		return -1;
	if (ptrace(PTRACE_SEIZE, daemon_pid, NULL, (void *)PTRACE_O_TRACESYSGOOD) ||
	    ptrace(PTRACE_INTERRUPT, daemon_pid, NULL, NULL) || waitpid(daemon_pid, &st, __WALL) != daemon_pid) {
		say("ptrace the daemon: %m");
		return -1;
	}
	if (connect_daemon())
		return -1;
	/* Syscall stops come as entry, exit pairs: stop at the exit of accept4. */
	for (;;) {
		struct syscall_info si;

		if (ptrace(PTRACE_SYSCALL, daemon_pid, NULL, NULL) || waitpid(daemon_pid, &st, __WALL) != daemon_pid) {
			say("ptrace the daemon: %m");
			return -1;
		}
		if (!WIFSTOPPED(st)) {
			say("the daemon ended while held");
			return -1;
		}
		if (WSTOPSIG(st) != (SIGTRAP | 0x80) ||
		    ptrace(PTRACE_GET_SYSCALL_INFO, daemon_pid, (void *)sizeof(si), &si) <= 0)
			continue;
		if (si.op == 1)
			nr = (long)si.entry.nr;
		else if (si.op == 2 && nr == SYS_accept4 && !si.exit.is_error)
			return 0;
	}
}

static int send_finish(void)
{
	uint32_t w = FINISH_WORD;

	return write(conn, &w, sizeof(w)) == sizeof(w) ? 0 : -1;
}

/*
 * In the task: map the dump's VMA, register it, hand the uffd over; the restorer's part.
 * Before the finish word nothing is copied but what faults ask for.
 */
static int task_handover(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = CRIU_FEATURES };
	struct uffdio_register reg = { .range = { BASE, vma_pages * PG }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char zero = 0;
	struct iovec iov = { .iov_base = &zero, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	int32_t vpid = VPID;
	void *p;
	int uffd;

	p = mmap((void *)BASE, vma_pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (p != (void *)BASE) {
		say("task: mmap at 0x%llx: %m", BASE);
		return -1;
	}
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		say("task: userfaultfd: %m");
		return -1;
	}
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		say("task: UFFDIO_API/REGISTER: %m");
		return -1;
	}
	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	if (write(conn, &vpid, sizeof(vpid)) != sizeof(vpid) || sendmsg(conn, &mh, 0) != 1) {
		say("task: handing the uffd over: %m");
		return -1;
	}
	if (keep_task_uffd)
		task_uffd = uffd;
	else
		close(uffd);
	close(conn);
	return 0;
}

/* Pages of the data part that read wrong (zero, or not their own address). */
static uint64_t bad_pages(void)
{
	uint64_t i, bad = 0;

	for (i = 0; i < data_pages; i++) {
		const volatile uint64_t *w = (const uint64_t *)(BASE + i * PG);

		if (*w != BASE + i * PG)
			bad++;
	}
	return bad;
}

static uint64_t missing_pages(void)
{
	unsigned char *v = malloc(vma_pages);
	uint64_t i, n = 0;

	if (!v || mincore((void *)BASE, data_pages * PG, v)) {
		free(v);
		return 0;
	}
	for (i = 0; i < data_pages; i++)
		n += !(v[i] & 1);
	free(v);
	return n;
}

static int wait_status(pid_t pid, int ms, int *status)
{
	uint64_t end = now_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		/* Not ours yet: a grandchild becomes ours (the subreaper's) when its parent dies. */
		if (r < 0 && errno != ECHILD)
			return -1;
		if (now_ms() > end)
			return -ETIMEDOUT;
		msleep(5);
	}
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", status);
}

static bool log_has(const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(log_path, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* The number after NEEDLE in the daemon's log. */
static int log_pid(const char *needle, pid_t *pid)
{
	char line[1024], *p;
	int ret = -1;
	FILE *f = fopen(log_path, "re");

	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f))
		if ((p = strstr(line, needle))) {
			*pid = (pid_t)atoi(p + strlen(needle));
			ret = *pid > 0 ? 0 : -1;
		}
	fclose(f);
	return ret;
}

/*
 * Until the daemon says it found the forked child's pid (2 s at most: a daemon that never
 * looks for it, as before, is then killed all the same), so that a busy machine does not
 * turn the case into a race between that search and our SIGKILL.
 */
static void wait_claimed(void)
{
	int i;

	for (i = 0; i < 2000 && !log_has("forked after the restore is pid"); i++)
		msleep(1);
}

static int kill_daemon(void)
{
	int st;

	if (kill(daemon_pid, SIGKILL))
		return -1;
	return waitpid(daemon_pid, &st, 0) == daemon_pid ? 0 : -1;
}

/*
 * A child that, told to go, reads the dump's data: exit 2 if any page read wrong, 0 if
 * all were right, 3 when its premise failed (nothing was missing when it was told).
 */
static void __attribute__((noreturn)) reader_child(int go_fd, int report_fd)
{
	uint64_t missing = missing_pages(), bad;
	char b;

	if (write(report_fd, &missing, sizeof(missing)) != sizeof(missing))
		_exit(4);
	if (read(go_fd, &b, 1) != 1)
		_exit(4);
	bad = bad_pages();
	if (bad)
		say("reader (pid %d): %llu of %llu pages read wrong, the daemon gone", (int)getpid(),
		    (unsigned long long)bad, (unsigned long long)data_pages);
	_exit(bad ? 2 : 0);
}

static int expect_killed(const char *who, pid_t pid, int ms)
{
	char what[64];
	int st;

	if (wait_status(pid, ms, &st))
		FAIL("%s (pid %d) has not died (or its parent has not) %d ms after the daemon was killed", who,
		     (int)pid, ms);
	describe(st, what, sizeof(what));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
		FAIL("%s (pid %d) read pages as zero and ran on (%s)", who, (int)pid, what);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		FAIL("%s (pid %d) was not killed: %s", who, (int)pid, what);
	return 0;
}

/*
 * A restored task that forks a child after the restore, and the pipes between them and
 * the harness: go tells the child to read on, rep brings the child's report (its pages
 * still missing), pp the child's pid from the task.
 */
struct family {
	int go[2], rep[2], pp[2];
	pid_t task, child;
};

static int family_pipes(struct family *f)
{
	return pipe(f->go) || pipe(f->rep) || pipe(f->pp) ? -1 : 0;
}

/*
 * family_fork: the pipes and the task, which hands its uffd over and forks the child,
 * CHILD(go, rep). Returns 0 in the task (f->child is its child), the task's pid in the
 * harness, -1 when the pipes or the fork failed.
 */
static pid_t family_fork(struct family *f, void (*child)(int go_fd, int report_fd))
{
	if (family_pipes(f))
		return -1;
	f->task = fork();
	if (f->task)
		return f->task;
	if (task_handover())
		_exit(1);
	f->child = fork();
	if (!f->child)
		child(f->go[0], f->rep[1]);
	return 0;
}

/* family_name_child: in the task, tell the harness the child's pid (or exit 1). */
static void family_name_child(struct family *f)
{
	if (write(f->pp[1], &f->child, sizeof(f->child)) != sizeof(f->child))
		_exit(1);
}

/*
 * family_check: in the harness, the child's pid from the task (else fail: the task did
 * not WHAT) and its report: WANT pages missing.
 */
static int family_check(struct family *f, const char *what, uint64_t want)
{
	uint64_t missing;

	track(f->task);
	if (read(f->pp[0], &f->child, sizeof(f->child)) != sizeof(f->child))
		FAIL("the task did not %s", what);
	track(f->child);
	if (read(f->rep[0], &missing, sizeof(missing)) != sizeof(missing))
		FAIL("the child did not report");
	if (missing != want)
		FAIL("premise: the child had %llu of %llu pages missing before the finish word, not %llu",
		     (unsigned long long)missing, (unsigned long long)data_pages, (unsigned long long)want);
	return 0;
}

/* family_go: the daemon is dead: tell the child to read its pages. */
static int family_go(struct family *f)
{
	if (kill_daemon())
		FAIL("killing the daemon: %m");
	if (write(f->go[1], "g", 1) != 1)
		FAIL("telling the child: %m");
	return 0;
}

/*
 * fork-exit-kill: the task forks after the restore and exits at once, so its child is
 * an orphan (ours, as the subreaper) before the daemon could find it among the task's
 * children; then the daemon is killed with the child's memory incomplete. The guard
 * must kill the child before it reads a missing page.
 *
 * fork-exit-unclaimed (UNCLAIMED): the same, the daemon killed before the finish word,
 * so before it has looked for the child's pid at all. The guard must find the orphan
 * itself (its uffd-registered memory, under the task's reaper, in its session).
 */
static int fork_exit(bool unclaimed)
{
	struct family f;

	vma_pages = data_pages = unclaimed ? 256 : 256 << 8; /* 1 MiB, 256 MiB */
	if (write_images() || start_daemon())
		return 1;
	switch (family_fork(&f, reader_child)) {
	case -1:
		return 1;
	case 0:
		family_name_child(&f);
		_exit(0);
	}
	if (family_check(&f, "fork", data_pages))
		return 1;
	waitpid(f.task, NULL, 0);
	if (unclaimed) {
		if (log_has("forked after the restore is pid"))
			FAIL("premise: the daemon found the child before the finish word");
	} else {
		if (send_finish())
			FAIL("finish word: %m");
		wait_claimed();
	}
	if (family_go(&f))
		return 1;
	return expect_killed(unclaimed ? "the orphaned child nobody had named" : "the orphaned child", f.child, 15000);
}

static int case_fork_exit_kill(void)
{
	return fork_exit(false);
}

static int case_fork_exit_unclaimed(void)
{
	return fork_exit(true);
}

/*
 * fork-complete-kill: the task forks before touching anything, then reads all of its
 * own memory (faults make it complete); at the finish word the daemon releases the
 * complete task and starts on the child, and is killed at once. The child must die, and
 * the complete parent with it (the tree goes as one).
 */
static int case_fork_complete_kill(void)
{
	struct family f;
	int tgo[2];
	uint64_t bad;
	char b;

	vma_pages = data_pages = 256 << 8;
	if (write_images() || start_daemon() || pipe(tgo))
		return 1;
	switch (family_fork(&f, reader_child)) {
	case -1:
		return 1;
	case 0:
		bad = bad_pages();
		family_name_child(&f);
		if (bad)
			_exit(2);
		/* Complete; wait (killed, or told the test is over). */
		if (read(tgo[0], &b, 1) != 1)
			_exit(1);
		_exit(0);
	}
	if (family_check(&f, "fork or read its memory", data_pages))
		return 1;
	if (send_finish())
		FAIL("finish word: %m");
	wait_claimed();
	if (family_go(&f))
		return 1;
	if (expect_killed("the forked child", f.child, 15000))
		return 1;
	if (expect_killed("the complete parent", f.task, 15000))
		return 1;
	return 0;
}

/*
 * pid-reuse: the task exits with memory to come, is reaped, and its pid is given to a
 * bystander (ns_last_pid); then the daemon is killed. Killing by pid number would hit
 * the bystander; the task's pidfd names only the task.
 */
static int case_pid_reuse(void)
{
	int rdy[2];
	pid_t task, by = -1;
	int tries, st;
	char b;

	vma_pages = data_pages = 256;
	if (write_images() || start_daemon())
		return 1;
	if (pipe(rdy))
		return 1;
	task = fork();
	if (!task)
		_exit(task_handover() ? 1 : 0);
	track(task);
	if (waitpid(task, &st, 0) != task || !WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("the task did not hand its uffd over");
	/* The daemon has it once the log names it. */
	for (tries = 0; tries < 400 && !log_has("lazy pages in"); tries++)
		msleep(5);
	for (tries = 0; tries < 20 && by != task; tries++) {
		FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "we");

		if (!f)
			FAIL("cannot write ns_last_pid: %m");
		fprintf(f, "%d", (int)task - 1);
		fclose(f);
		by = fork();
		if (!by) {
			if (read(rdy[0], &b, 1) < 0)
				_exit(1);
			_exit(0);
		}
		if (by == task)
			track(by);
		else {
			kill(by, SIGKILL);
			waitpid(by, NULL, 0);
		}
	}
	if (by != task) {
		say("SKIP: pid %d could not be given to a bystander (other processes took it)", (int)task);
		return 77;
	}
	if (kill_daemon())
		FAIL("killing the daemon: %m");
	/* The guard's whole kill, done or not, takes far less. */
	msleep(1000);
	if (waitpid(by, &st, WNOHANG) == by) {
		char what[64];

		describe(st, what, sizeof(what));
		FAIL("the bystander that got the exited task's pid %d died: %s", (int)by, what);
	}
	if (write(rdy[1], "x", 1) != 1 || waitpid(by, &st, 0) != by || !WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("the bystander did not end as told");
	return 0;
}

/* ---- faults waiting while a layout event is pending ---- */

#define FAULTERS     400
#define FAULT_STRIDE 64 /* pages between two faulters' pages: beyond any fault-around */

static volatile uint64_t fault_sink;

static void *faulter(void *arg)
{
	fault_sink += *(volatile uint64_t *)arg;
	return NULL;
}

static void *dontneed(void *arg)
{
	madvise(arg, PG, MADV_DONTNEED);
	return NULL;
}

/*
 * deferred-overflow: FAULTERS threads fault on pages of the hole while the daemon is
 * stopped; a layout event (MADV_DONTNEED: REMOVE) is then queued behind them, so every
 * one of those faults meets EAGAIN when the daemon comes back, and waits for the event
 * to be read. Each must still be answered; before the finish word nothing else would.
 */
static int case_deferred_overflow(void)
{
	int res[2];
	pid_t task;
	int st;
	char what[64];

	data_pages = 16;
	vma_pages = data_pages + (uint64_t)FAULTERS * FAULT_STRIDE;
	if (write_images() || start_daemon())
		return 1;
	if (pipe(res))
		return 1;
	task = fork();
	if (!task) {
		pthread_t th[FAULTERS], dn;
		pthread_attr_t a;
		int i;

		if (task_handover())
			_exit(1);
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 << 10);
		if (kill(daemon_pid, SIGSTOP))
			_exit(1);
		for (i = 0; i < FAULTERS; i++)
			if (pthread_create(&th[i], &a, faulter,
					   (void *)(BASE + (data_pages + (uint64_t)i * FAULT_STRIDE) * PG)))
				_exit(1);
		msleep(300); /* every faulter waits in its fault by now */
		if (pthread_create(&dn, &a, dontneed, (void *)BASE))
			_exit(1);
		msleep(100);
		if (kill(daemon_pid, SIGCONT))
			_exit(1);
		for (i = 0; i < FAULTERS; i++)
			pthread_join(th[i], NULL);
		pthread_join(dn, NULL);
		_exit(0);
	}
	track(task);
	if (wait_status(task, 15000, &st)) {
		kill(task, SIGKILL);
		waitpid(task, NULL, 0);
		FAIL("%d threads faulting in a hole while a REMOVE was pending: some were never answered (15 s)",
		     FAULTERS);
	}
	describe(st, what, sizeof(what));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("the task ended with %s", what);
	return send_finish() ? 1 : 0;
}

static void segv_exit(int sig)
{
	_exit(3);
}

static void *mover(void *arg)
{
	void *to = (void *)(BASE + (vma_pages + 1024) * PG);

	mremap(arg, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	return NULL;
}

/*
 * enoent-wake: a thread faults on a lazy page while the daemon is stopped, and another
 * moves that page's range away (REMAP). The daemon meets the fault first (EAGAIN), then
 * the move; the old address is no longer registered (ENOENT). The waiting thread must be
 * woken, to fault again where nothing is mapped (SIGSEGV, as without a uffd), not wait
 * until the task is complete.
 */
static int case_enoent_wake(void)
{
	pid_t task;
	int st;
	char what[64];

	vma_pages = data_pages = 64;
	if (write_images() || start_daemon())
		return 1;
	task = fork();
	if (!task) {
		pthread_t th, mv;
		void *page = (void *)(BASE + 8 * PG);

		if (task_handover())
			_exit(1);
		signal(SIGSEGV, segv_exit);
		if (kill(daemon_pid, SIGSTOP))
			_exit(1);
		if (pthread_create(&th, NULL, faulter, page))
			_exit(1);
		msleep(200);
		if (pthread_create(&mv, NULL, mover, page))
			_exit(1);
		msleep(100);
		if (kill(daemon_pid, SIGCONT))
			_exit(1);
		pthread_join(th, NULL);
		_exit(0); /* the fault was answered with a page where it was unmapped */
	}
	track(task);
	if (wait_status(task, 10000, &st)) {
		kill(task, SIGKILL);
		waitpid(task, NULL, 0);
		FAIL("a fault on a range moved away while it waited was never woken (10 s)");
	}
	describe(st, what, sizeof(what));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 3)
		FAIL("the faulting thread should have got SIGSEGV at the unmapped address; the task ended with %s",
		     what);
	return send_finish() ? 1 : 0;
}

static volatile pid_t faulter_tid;

static void *checked_faulter(void *arg)
{
	uint64_t want = (uint64_t)(uintptr_t)arg;

	faulter_tid = (pid_t)syscall(SYS_gettid);
	return (void *)(uintptr_t)(*(volatile uint64_t *)arg == want);
}

/* Until thread TID of ours sleeps in handle_userfault (2 s at most): true if it did. */
static bool wait_in_fault(pid_t tid)
{
	char path[64], buf[64];
	int i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
	for (i = 0; i < 2000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (!strcmp(buf, "handle_userfault"))
				return true;
		}
		msleep(1);
	}
	return false;
}

/*
 * present-wake: a thread faults on a lazy page while the daemon is stopped; the page is
 * then put in without a wake-up, as the daemon's copy thread does until its job ends
 * (UFFDIO_COPY_MODE_DONTWAKE). The daemon finds the page pending in its books and its
 * copy refused (EEXIST): the waiting thread must be woken now, and read the page.
 */
static int case_present_wake(void)
{
	pid_t task;
	int st;
	char what[64];

	vma_pages = data_pages = 64;
	keep_task_uffd = true;
	if (write_images() || start_daemon())
		return 1;
	task = fork();
	if (!task) {
		uint64_t page = BASE + 8 * PG, *src;
		struct uffdio_copy c = { .dst = page, .len = PG, .mode = UFFDIO_COPY_MODE_DONTWAKE };
		pthread_t th;
		void *ok;

		if (task_handover())
			_exit(1);
		src = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (src == MAP_FAILED)
			_exit(1);
		*src = page; /* the dump's data for that page starts with its address */
		c.src = (uint64_t)(uintptr_t)src;
		if (kill(daemon_pid, SIGSTOP))
			_exit(1);
		if (pthread_create(&th, NULL, checked_faulter, (void *)(uintptr_t)page))
			_exit(1);
		while (!faulter_tid)
			sched_yield();
		if (!wait_in_fault(faulter_tid)) {
			say("task: premise: thread %d was never seen waiting in its fault", (int)faulter_tid);
			_exit(3);
		}
		if (ioctl(task_uffd, UFFDIO_COPY, &c) || c.copy != (int64_t)PG) {
			say("task: UFFDIO_COPY (DONTWAKE) of the faulting page: %m");
			_exit(1);
		}
		if (kill(daemon_pid, SIGCONT))
			_exit(1);
		pthread_join(th, &ok);
		_exit(ok ? 0 : 2);
	}
	track(task);
	if (wait_status(task, 10000, &st)) {
		kill(task, SIGKILL);
		waitpid(task, NULL, 0);
		FAIL("a fault on a page put in without a wake-up while it waited was never woken (10 s)");
	}
	describe(st, what, sizeof(what));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
		FAIL("the faulting thread was woken but read the page wrong");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		FAIL("the task ended with %s", what);
	return send_finish() ? 1 : 0;
}

static void *fork_reader(void *arg)
{
	struct family *f = arg;

	f->child = fork();
	if (!f->child)
		reader_child(f->go[0], f->rep[1]);
	family_name_child(f);
	return NULL;
}

/*
 * fork-in-failed-batch: one read of the uffd brings a fault the daemon cannot serve (its
 * pages file was truncated under it) and, behind it, a FORK. The daemon fails on the
 * fault; the FORK's child must not be lost with the rest of the batch: it dies with the
 * tree, before it can read the pages nobody will copy.
 */
static int case_fork_in_failed_batch(void)
{
	struct family f;
	char pages[4200];
	pid_t task, child = 0;
	int st;

	vma_pages = data_pages = 256;
	if (write_images() || start_daemon() || family_pipes(&f))
		return 1;
	snprintf(pages, sizeof(pages), "%s/pages-1.img", img_dir);
	task = fork();
	if (!task) {
		pthread_t th, fk;

		if (task_handover())
			_exit(1);
		if (truncate(pages, 0) || kill(daemon_pid, SIGSTOP))
			_exit(1);
		if (pthread_create(&th, NULL, faulter, (void *)(BASE + 100 * PG)))
			_exit(1);
		msleep(200); /* the fault is queued first, the FORK behind it */
		if (pthread_create(&fk, NULL, fork_reader, &f))
			_exit(1);
		msleep(200);
		if (kill(daemon_pid, SIGCONT))
			_exit(1);
		pthread_join(fk, NULL);
		pthread_join(th, NULL);
		_exit(0);
	}
	track(task);
	close(f.pp[1]);
	close(f.rep[1]);
	if (wait_status(daemon_pid, 15000, &st))
		FAIL("the daemon did not end after a fault it could not serve");
	daemon_pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
		FAIL("the daemon should have exited 1");
	if (!log_has("killing restored task 1"))
		FAIL("the daemon did not say it killed the task");
	/* The task may have been killed before its fork returned: the log names the child. */
	if (read(f.pp[0], &child, sizeof(child)) != sizeof(child) && log_pid("forked after the restore is pid ", &child))
		FAIL("neither the task nor the daemon's log named the forked child");
	track(child);
	if (write(f.go[1], "g", 1) != 1 && errno != EPIPE)
		FAIL("telling the child: %m");
	return expect_killed("the child forked behind the failed fault", child, 15000);
}

/* The daemon's one child: the guard, forked at its start. */
static pid_t guard_pid(void)
{
	char path[64];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)daemon_pid, (int)daemon_pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &pid) != 1)
		pid = -1;
	fclose(f);
	return pid;
}

/* The CPU time (user + system, clock ticks) PID has used. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* Past "(comm)", which may hold spaces: state is field 3, utime and stime 14 and 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* A free TCP port on 127.0.0.1 (the kernel's pick, let go again at once). */
static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* `lazy-uffd page-server` on the case's images, at 127.0.0.1:PORT; its pid once it listens. */
static pid_t start_page_server(const char *port)
{
	char ps_log[sizeof(work_dir) + 16], b;
	int st[2];
	pid_t pid;

	snprintf(ps_log, sizeof(ps_log), "%s/ps.log", work_dir);
	if (pipe2(st, O_CLOEXEC))
		return -1;
	pid = fork();
	if (!pid) {
		dup2(st[1], 9);
		execl(lazy_uffd, lazy_uffd, "page-server", "-D", img_dir, "-W", work_dir, "-o", ps_log, "--address",
		      "127.0.0.1", "--port", port, "--status-fd", "9", (char *)NULL);
		_exit(127);
	}
	close(st[1]);
	if (pid < 0 || read(st[0], &b, 1) != 1) {
		say("the page server exited before it listened (see %s)", ps_log);
		pid = -1;
	}
	close(st[0]);
	return track(pid);
}

/*
 * complete-no-spin: once the task is complete the daemon closes its uffd, while the
 * guard (stopped here) still holds a copy, which keeps the file and any epoll
 * registration of it alive. The task then unmaps part of its memory: the UNMAP event
 * makes that file readable. A daemon that left the uffd in its epoll set is woken for it
 * on every wait, for a task it no longer serves, and spins; ours sleeps. The task's
 * munmap waits until the event is read or the file is gone: it returns when the guard,
 * resumed, drops its copy.
 *
 * The daemon must stay up with nothing to do meanwhile: the task's forked child is
 * incomplete, its pages asked of a page server that is stopped. Parent and child unmap
 * each the other's half, so that the answers to the parent's faults are of no use to
 * the child (an answer is copied into every task that wants it).
 */
static void __attribute__((noreturn)) half_child(int go_fd, int report_fd)
{
	const uint64_t half = data_pages / 2;
	unsigned char v[64];
	uint64_t i, missing = 0, bad = 0;
	char b;

	if (munmap((void *)BASE, half * PG) || half > sizeof(v) || mincore((void *)(BASE + half * PG), half * PG, v))
		_exit(4);
	for (i = 0; i < half; i++)
		missing += !(v[i] & 1);
	if (write(report_fd, &missing, sizeof(missing)) != sizeof(missing) || read(go_fd, &b, 1) != 1)
		_exit(4);
	for (i = half; i < data_pages; i++)
		bad += *(const volatile uint64_t *)(BASE + i * PG) != BASE + i * PG;
	_exit(bad ? 2 : 0);
}

static int case_complete_no_spin(void)
{
	struct family f;
	int go[2], st;
	long before, after;
	pid_t guard, ps;
	char port[16], b, what[64];
	uint64_t i, bad = 0;

	vma_pages = data_pages = 16; /* the parent's half: one fault's fault-around */
	snprintf(port, sizeof(port), "%d", free_port());
	daemon_extra[0] = "--page-server";
	daemon_extra[1] = "--address";
	daemon_extra[2] = "127.0.0.1";
	daemon_extra[3] = "--port";
	daemon_extra[4] = port;
	daemon_extra[5] = "--reconnect-timeout";
	daemon_extra[6] = "60";
	if (write_images())
		return 1;
	ps = start_page_server(port);
	if (ps < 0 || start_daemon())
		return 1;
	guard = guard_pid();
	if (guard <= 0)
		FAIL("the daemon has no guard process");
	if (pipe(go))
		return 1;
	switch (family_fork(&f, half_child)) {
	case -1:
		return 1;
	case 0:
		if (munmap((void *)(BASE + data_pages / 2 * PG), data_pages / 2 * PG))
			_exit(1);
		for (i = 0; i < data_pages / 2; i++)
			bad += *(const volatile uint64_t *)(BASE + i * PG) != BASE + i * PG;
		if (bad)
			_exit(2);
		family_name_child(&f);
		/* Told that the daemon has released us: queue an event on the closed uffd. */
		if (read(go[0], &b, 1) != 1)
			_exit(1);
		munmap((void *)BASE, PG);
		_exit(0);
	}
	/* The child's half is to come, the parent's half it unmapped. */
	if (family_check(&f, "fork or read its memory", data_pages / 2))
		return 1;
	if (kill(ps, SIGSTOP) || kill(guard, SIGSTOP))
		FAIL("stopping the page server and the guard: %m");
	if (send_finish())
		FAIL("finish word: %m");
	for (st = 0; st < 2000 && !log_has("task 1: all lazy pages copied"); st++)
		msleep(1);
	if (!log_has("task 1: all lazy pages copied"))
		FAIL("premise: the daemon did not release the complete task after the finish word");
	if (write(go[1], "u", 1) != 1)
		FAIL("telling the task: %m");
	msleep(200); /* the munmap's event is queued by now */
	before = cpu_ticks(daemon_pid);
	msleep(1000);
	after = cpu_ticks(daemon_pid);
	if (kill(guard, SIGCONT) || kill(ps, SIGCONT))
		FAIL("resuming the guard and the page server: %m");
	if (before < 0 || after < 0)
		FAIL("reading the daemon's CPU time");
	/* 100 ticks a second: a sleeping daemon takes 0-2, a loop woken on every wait what it gets. */
	if (after - before > 20)
		FAIL("the daemon used %ld ticks of CPU in 1 s with nothing to do: woken for a uffd it closed",
		     after - before);
	if (wait_status(f.task, 10000, &st))
		FAIL("the task's munmap did not return once the guard let its uffd go");
	describe(st, what, sizeof(what));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("the task read wrong pages or failed: %s", what);
	if (write(f.go[1], "g", 1) != 1)
		FAIL("telling the child: %m");
	if (wait_status(f.child, 10000, &st))
		FAIL("the forked child did not get its pages once the page server was back");
	describe(st, what, sizeof(what));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("the forked child read wrong pages: %s", what);
	if (wait_status(daemon_pid, 10000, &st))
		FAIL("the daemon did not exit with every task complete");
	daemon_pid = 0;
	describe(st, what, sizeof(what));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("the daemon ended with %s", what);
	return 0;
}

/*
 * creds-after-accept: the task sends its uffd right after the daemon's accept() returns,
 * before the daemon does anything else (it is held at that syscall's exit by ptrace).
 * The uffd must still come with the task's credentials: the host pid the daemon needs
 * to kill it if its memory cannot be completed. A daemon that asked for credentials on
 * the accepted socket only, after accept(), got pid 0 for such a task.
 */
static int case_creds_after_accept(void)
{
	int ready[2], st;
	pid_t task;
	char b, want[64];

	vma_pages = data_pages = 8;
	if (write_images() || pipe(ready))
		return 1;
	if (start_daemon_held())
		return 1;
	task = fork();
	if (!task) {
		if (task_handover())
			_exit(1);
		if (write(ready[1], "h", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	track(task);
	if (read(ready[0], &b, 1) != 1)
		FAIL("the task did not hand its uffd over");
	if (ptrace(PTRACE_DETACH, daemon_pid, NULL, NULL))
		FAIL("PTRACE_DETACH: %m");
	snprintf(want, sizeof(want), "task 1 (pid %d here)", (int)task);
	for (st = 0; st < 2000 && !log_has("task 1 (pid "); st++)
		msleep(1);
	if (!log_has(want))
		FAIL("the daemon did not get the pid of a task that sent its uffd right after accept() "
		     "(wanted \"%s\" in %s)", want, log_path);
	return send_finish() ? 1 : 0;
}

static const struct {
	const char *name;
	int (*run)(void);
	const char *what;
} cases[] = {
	{ "fork-exit-kill", case_fork_exit_kill, "a child orphaned right after its fork dies with the daemon" },
	{ "fork-exit-unclaimed", case_fork_exit_unclaimed,
	  "the same, the daemon killed before it looked for the child: the guard finds it" },
	{ "fork-complete-kill", case_fork_complete_kill,
	  "the daemon dies with a forked child incomplete and its parent complete: both die" },
	{ "pid-reuse", case_pid_reuse, "an exited task's pid reused by a bystander: the bystander lives" },
	{ "deferred-overflow", case_deferred_overflow,
	  "400 faults in a hole deferred behind a REMOVE event are all answered" },
	{ "enoent-wake", case_enoent_wake, "a fault whose range moved away while it waited is woken" },
	{ "present-wake", case_present_wake, "a fault on a page put in without a wake-up is woken" },
	{ "fork-in-failed-batch", case_fork_in_failed_batch,
	  "a FORK read behind a fault the daemon fails on: the child dies with the tree" },
	{ "creds-after-accept", case_creds_after_accept,
	  "a uffd sent right after the daemon's accept() comes with the task's pid" },
	{ "complete-no-spin", case_complete_no_spin,
	  "a complete task's uffd, closed while the guard holds a copy, no longer wakes the loop" },
};

int main(int argc, char **argv)
{
	size_t i, j;
	int ret;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%-20s %s\n", cases[i].name, cases[i].what);
		return 0;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: uffd-events LAZY_UFFD CASE DIR | --list\n");
		return 2;
	}
	lazy_uffd = argv[1];
	dir = argv[3];
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, argv[2]))
			break;
	if (i == sizeof(cases) / sizeof(cases[0])) {
		fprintf(stderr, "uffd-events: no case '%s' (--list)\n", argv[2]);
		return 2;
	}
	snprintf(img_dir, sizeof(img_dir), "%s/img", dir);
	snprintf(work_dir, sizeof(work_dir), "%s/work", dir);
	snprintf(log_path, sizeof(log_path), "%s/work/lazy.log", dir);
	if (mkdir(dir, 0700) || mkdir(work_dir, 0700)) {
		fprintf(stderr, "uffd-events: mkdir %s: %m\n", dir);
		return 1;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1)) {
		fprintf(stderr, "uffd-events: PR_SET_CHILD_SUBREAPER: %m\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	ret = cases[i].run();
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	/* Whatever the case left (a child, the guard): ours as the subreaper; not left behind. */
	for (j = 0; j < nr_spawned; j++)
		kill(spawned[j], SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (!ret)
		printf("PASS %s\n", cases[i].name);
	return ret;
}
