/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces of the lazy-pages daemon (`lazy-uffd daemon`); see DESIGN.md for
 * how a fault flows through them. Nothing here is used outside lazy-pages/.
 *
 * Conventions: functions return 0 or -errno; the function that understands an error logs
 * it, once. Addresses are user virtual addresses of the restored task; "img" addresses are
 * the addresses at dump time, which is where the page data is found (they differ after a
 * task mremap()s a lazy range).
 */
#ifndef LAZY_UFFD_DAEMON_H
#define LAZY_UFFD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/userfaultfd.h>

#include "crimg.h"
#include "profile.h"
#include "proto.h"

#define PAGE_SHIFT 12
#define PAGE_SZ	   4096ULL

/* ---- uffd.c: the uffd ioctls, with errno classified once ---- */

enum uffd_res {
	UFFD_OK,      /* everything asked for was done */
	UFFD_EXISTS,  /* stopped at a page that is already present */
	UFFD_RETRY,   /* EAGAIN: layout events are pending; read them, then retry */
	UFFD_NOENT,   /* ENOENT: the range is no longer registered (layout changed) */
	UFFD_GONE,    /* ESRCH/ENOSPC: the task's memory is gone (it exited) */
	UFFD_FAILED,  /* anything else: a bug or a broken target */
};

/*
 * Copy LEN bytes from SRC to DST (page aligned) in the task behind UFFD, or map zero
 * pages. *done gets the bytes handled before the result (all of LEN for UFFD_OK).
 */
enum uffd_res uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *done, int *err);
/* The same; unless WAKE, threads waiting on those pages sleep on until a uffd_wake. */
enum uffd_res uffd_copy_mode(int uffd, uint64_t dst, const void *src, uint64_t len, bool wake, uint64_t *done,
			     int *err);
enum uffd_res uffd_zero(int uffd, uint64_t dst, uint64_t len, uint64_t *done, int *err);
enum uffd_res uffd_wake(int uffd, uint64_t start, uint64_t len, int *err);
/*
 * Whether PAGE lies in a VMA registered with a uffd, without touching memory: UFFD_OK
 * yes, UFFD_NOENT no, UFFD_RETRY layout events are pending (cannot tell), UFFD_GONE the
 * task exited; UFFD_FAILED anything else (*err).
 */
enum uffd_res uffd_probe_registered(int uffd, uint64_t page, int *err);
/* Read up to N messages without blocking: count (0 when none), or -errno. */
int uffd_read_msgs(int uffd, struct uffd_msg *msgs, int n);

/* ---- task.c: one restored task's lazy ranges ---- */

/* A run of lazy pages contiguous both at dump time and now, inside one VMA. */
struct lazy_range {
	uint64_t start;	    /* current address */
	uint64_t img_start; /* address at dump time */
	uint64_t nr_pages;
	uint64_t nr_pending;
	uint64_t *pending; /* bit i set: page i still to be copied */
};

/* Where copied bytes went: a fault's own page, its fault-around, background, prefetch. */
enum copy_path { PATH_FAULT, PATH_AROUND, PATH_BG, PATH_PREFETCH, NR_PATHS };

/* Fault latency: log-linear buckets (16 per power of two of ns) for the quantiles. */
#define LAT_FINE_BUCKETS 640
/* ... and log2 buckets of microseconds for the JSON histogram. */
#define LAT_LOG2_BUCKETS 24

struct fault_stats {
	uint64_t faults;	 /* PAGEFAULT messages */
	uint64_t faults_copied;	 /* the page was still lazy: copied for this fault */
	uint64_t faults_present; /* already copied (fault-around, background, prefetch): woken */
	uint64_t faults_zero;	 /* outside lazy data: a zero page */
	uint64_t faults_queued;	 /* remote: answered later by a request on its way */
	uint64_t pages_fault;	 /* pages copied to serve a fault, fault-around included */
	uint64_t pages_around;	 /* of those, the pages after the faulting one */
	uint64_t pages_bg;	 /* pages copied by background population */
	uint64_t pages_prefetch; /* pages copied from the --prefetch-profile */
	uint64_t pages_zero;	 /* zero pages mapped for faults outside lazy data */
	uint64_t bytes;		 /* page data copied */
	uint64_t bytes_path[NR_PATHS];
	/* --prefetch-profile: profile pages in lazy memory, copied by prefetch before any
	 * fault asked (hits), asked for by a fault first (misses), outside lazy memory. */
	uint64_t profile_pages, prefetch_hits, prefetch_misses, profile_skipped;
	uint64_t nr_lat, lat_max_ns;
	uint32_t lat_fine[LAT_FINE_BUCKETS];
	uint32_t lat_log2_us[LAT_LOG2_BUCKETS];
};

struct lazy_task {
	pid_t vpid;	/* pid in the dump (pagemap-<vpid>.img) */
	pid_t host_pid; /* as the daemon sees it; 0 for a forked child until it is found */
	int pidfd;	/* names host_pid; -1 until known */
	pid_t parent_vpid;
	struct lazy_task *fork_parent; /* a forked child whose pid is still being looked for */
	pid_t outer_ppid; /* the parent criu's task had at the handoff: a reaper for orphans */
	pid_t sid;	  /* its session (a forked child's parent's): orphans are looked for in it */
	uint64_t claim_since_ns;
	int uffd;
	const struct crimg_task *img;

	struct lazy_range *ranges; /* sorted by start, non-overlapping */
	size_t nr_ranges, cap_ranges;
	uint64_t nr_pending;
	size_t bg_range; /* where background population resumes */
	bool cp_skip;	 /* the copy thread's last run stopped short: the loop's turn */

	uint32_t guard_id; /* its uffd's copy in the guard */
	/* Adaptive fault-around: where a sequential fault would come next, and the window. */
	uint64_t seq_next;
	uint64_t seq_prev_img; /* dump-time address of the last fault's page */
	uint64_t around;
	/* The same for faults outside lazy data, which are answered with zero pages. */
	uint64_t zero_next, zero_around;
	/* --prefetch-profile: this task's records (recorded order), the next one, how far
	 * into it; and its profile pages sorted by address (for the miss count). */
	const struct profile_rec **pf;
	size_t pf_nr, pf_pos;
	uint64_t pf_off;
	struct profile_rec *pf_sorted;
	size_t pf_nr_sorted;
	uint64_t pf_retry_ns; /* before the finish word: VMAs not registered yet, retry then */
	bool pf_live;	      /* a prefetch copy got through: the VMAs are registered */
	unsigned int pf_jobs; /* prefetch batches with the copy thread */

	bool done; /* uffd closed: complete, or the task is gone */
	bool gone;
	struct fault_stats st;
};

/*
 * The guard (guard.c): a forked process holding a copy of every served uffd, so that a
 * daemon that dies leaves the restored tasks blocked in their faults rather than reading
 * zeros; it then SIGKILLs them (and their descendants), waits until they are gone, and
 * only then lets the uffds go. Start it before any thread exists. Each call after a
 * failed start is a no-op with a NULL guard.
 */
struct guard;
int guard_start(struct guard **out);
/* Hand the guard a copy of UFFD (ID names it for guard_release). */
int guard_hold(struct guard *g, uint32_t id, pid_t vpid, pid_t host_pid, int uffd);
/*
 * PIDFD names task ID's process (HOST_PID): the guard keeps a copy, to kill it with the
 * tree. OUTER_PPID and SID let it find a forked child the daemon had not found yet.
 */
int guard_pidfd(struct guard *g, uint32_t id, int pidfd, pid_t host_pid, pid_t outer_ppid, pid_t sid);
/* The task's memory is complete: the guard drops its copy. */
void guard_release(struct guard *g, uint32_t id);
/* The end: with COMPLETE the guard exits quietly, else, if any task was incomplete, it
 * kills the whole tree (every task it has a pidfd of, complete or not, and their
 * descendants). Waits for the guard to finish either way. */
void guard_close(struct guard *g, bool complete);

/*
 * The restored tree as processes (tree.c). Pidfds, never bare pid numbers, name the
 * tasks we may kill.
 */
/* pidfd_open(PID): a pidfd or -1 with errno. */
int tree_pidfd(pid_t pid);
/* PID's parent, or 0 when it is gone. */
pid_t tree_ppid(pid_t pid);
/* Whether the process PIDFD names has exited. */
bool tree_exited(int pidfd);
/* The pid a pidfd names in our pid namespace, or -1 once it has exited. */
pid_t tree_pidfd_pid(int pidfd);
/* A live child of PARENT (any thread's) not in SKIP and not sharing PARENT's mm: its
 * pidfd (pid in *CHILD), or -1 when there is none yet. */
int tree_find_child(pid_t parent, const pid_t *skip, size_t nr_skip, pid_t *child);
/* The same among the children of REAPERS, for a child whose parent exited: only a
 * process of session SID (when > 0) with uffd-registered memory qualifies. */
int tree_find_orphan(const pid_t *reapers, size_t nr_reapers, const pid_t *skip, size_t nr_skip, pid_t sid,
		     pid_t *child);
/* PID's session as our pid namespace sees it, or 0. */
pid_t tree_sid(pid_t pid);
/* SIGSTOP every process named by PIDFDS (-1 entries skipped) and all their descendants,
 * then SIGKILL them all and wait up to WAIT_MS for each to be gone. Returns how many
 * were signalled. */
size_t tree_kill(const int *pidfds, size_t nr, int wait_ms);

/* Build the lazy ranges of T from its image: PE_LAZY entries, split at VMA ends. */
int task_init_ranges(struct lazy_task *t);
/*
 * At the restore's finish word, every VMA the restorer registers is registered: each of
 * T's lazy ranges must lie in a registered VMA, or criu restore restored T from other
 * images than the daemon's (IMAGES, for the message). -EINVAL, logged, on a mismatch.
 */
int task_check_registered(const struct lazy_task *t, const char *images);
/* Copy PARENT's remaining state into CHILD (EVENT_FORK). */
int task_clone_ranges(struct lazy_task *child, const struct lazy_task *parent);
void task_free_ranges(struct lazy_task *t);

/* Index of the range holding ADDR, or -1. */
ssize_t task_find(const struct lazy_task *t, uint64_t addr);
/* Pages from ADDR, which no range holds, up to the next range's start; MAX at most. */
uint64_t task_hole_pages(const struct lazy_task *t, uint64_t addr, uint64_t max);
/* Forget [start, end): unmapped or MADV_DONTNEED'd; those pages are no longer lazy. */
int task_drop(struct lazy_task *t, uint64_t start, uint64_t end);
/* [from, from + len) now lives at TO (EVENT_REMAP). */
int task_remap(struct lazy_task *t, uint64_t from, uint64_t to, uint64_t len);
/* Mark pages [idx, idx + n) of range R as copied. */
void task_mark_done(struct lazy_task *t, struct lazy_range *r, uint64_t idx, uint64_t n);
static inline bool range_page_pending(const struct lazy_range *r, uint64_t idx)
{
	return r->pending[idx / 64] & (1ULL << (idx % 64));
}
/* Length of the run of pending pages of R starting at IDX, at most MAX. */
uint64_t range_pending_run(const struct lazy_range *r, uint64_t idx, uint64_t max);
/* First pending page of R at or after IDX, or r->nr_pages. */
uint64_t range_next_pending(const struct lazy_range *r, uint64_t idx);
/*
 * From IDX through the last pending page before IDX + MAX: a span whose pages copied
 * already are passed over, so that a range pitted by a prefetch or by faults is still
 * populated in large steps rather than one small run at a time.
 */
uint64_t range_pending_span(const struct lazy_range *r, uint64_t idx, uint64_t max);

/* ---- source_local.c: page data from the image's pages files ---- */

struct source;

int source_local_open(struct source **out, const struct crimg *img);
void source_close(struct source *s);
/*
 * Point *data at the bytes of up to NR pages of TASK at dump-time address IMG_ADDR;
 * *run gets how many pages are contiguous there (>= 1).
 */
int source_get(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, const void **data,
	       uint64_t *run);
/*
 * Where up to NR pages of TASK at IMG_ADDR are stored: *fd (the image's, never closed by
 * the caller) at *off, *run of them contiguous there (>= 1), for a pread of one's own.
 */
int source_locate(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr, int *fd,
		  uint64_t *off, uint64_t *run);
/* The NR pages at DATA (from source_get) have been copied: let them go from our memory. */
void source_put(struct source *s, const void *data, uint64_t nr);

/*
 * Like source_get, but *data always points into the mapping of the pages file (never a
 * buffer of ours), so it stays valid until source_put whatever else is read meanwhile.
 */
int source_get_mapped(struct source *s, const struct crimg_task *task, uint64_t img_addr, uint64_t nr,
		      const void **data, uint64_t *run);

/* ---- copier.c: a second thread copying background runs (local pages) ---- */

#define COPIER_DEPTH 2 /* runs queued or running at once: the thread never waits for the next */

/* A piece of a prefetch job: NR pages, contiguous at DST (now), IMG (dump time) and OFF of FD. */
struct copier_piece {
	uint64_t dst, img;
	uint64_t off;
	int fd;
	uint32_t nr;
};

#define COPIER_BATCH_PAGES 64 /* pages in one prefetch job, at most */
#define COPIER_SPAN_PAGES  512 /* pages in one background job, at most */

struct copier_job {
	const void *owner; /* the loop's task; compared, never used */
	int uffd;
	uint64_t dst, img; /* a run: where it goes now, and its dump-time address */
	const void *src;   /* a run: from source_get_mapped */
	/*
	 * A run's pages to copy: bit i for page i. The others are done (a fault's or the
	 * prefetch's copy) and no ioctl goes to them: a present page would cost a refused
	 * copy each, and a page done but no longer present must not get old data.
	 */
	uint64_t want[COPIER_SPAN_PAGES / 64];
	/*
	 * Or scattered pieces (a prefetch batch, up to COPIER_BATCH_PAGES pages), which the
	 * thread reads from their files and copies without waking anyone; one UFFDIO_WAKE
	 * over their span ends the job. The loop's until reaped.
	 */
	struct copier_piece *pieces;
	size_t nr_pieces;
	uint64_t len; /* bytes in all */
	/* Results: bytes from the start got through (copied, or present already), of them copied. */
	uint64_t through, copied;
	enum uffd_res res; /* why it stopped short of len, if it did */
	int err;
	bool cancelled;
	bool read_failed; /* a prefetch job's pread, not its copy (err) */
};

struct copier;

int copier_start(struct copier **out);
/* Cancels what is queued, waits for the run under way to stop, joins the thread. */
void copier_stop(struct copier *c);
/* Readable (eventfd) while finished jobs wait to be reaped. */
int copier_fd(const struct copier *c);
/* Queue a job; -EBUSY when COPIER_DEPTH are queued or running or not yet reaped. */
int copier_submit(struct copier *c, const struct copier_job *j);
/* 1 and *out: a finished job, oldest first; 0: none. */
int copier_reap(struct copier *c, struct copier_job *out);
/* Jobs submitted and not yet reaped (their runs are off limits for other copies' planning). */
size_t copier_in_flight(struct copier *c, struct copier_job *out, size_t max);
/*
 * Around every read of a uffd: copier_read_lock (true if OWNER has a job queued or
 * running: the thread's copies are then held off) and, if it returned true,
 * copier_read_unlock, saying whether the messages read had a layout event: OWNER's jobs
 * are then cancelled before any copy of theirs can start again. C may be NULL.
 */
bool copier_read_lock(struct copier *c, const void *owner);
void copier_read_unlock(struct copier *c, const void *owner, bool layout_changed);
/* Cancel OWNER's jobs, then wait until none of them is queued or running (its uffd closes). */
void copier_forget(struct copier *c, const void *owner);

/* ---- source_remote.c: page data from a page server, asynchronously ---- */

struct remote_opts {
	const char *address; /* NULL: loopback, as criu */
	int port;
	enum ps_layout layout; /* 0: from the images' pagemap encoding */
	double reconnect_timeout;
	bool single_connection; /* never open the urgent channel */
	unsigned int bulk_pages; /* pages per background request */
	unsigned int bulk_depth; /* background requests in flight */
	unsigned int bulk_depth_shared; /* the same while faults share the one connection */
	struct tls_opts tls;
	int ps_socket; /* --ps-socket: the main connection, made by our caller; or -1 */
};

/* One GET: asked by the loop, answered (got pages at data) by the receiver. */
struct ps_req {
	pid_t vpid;
	uint64_t img_addr; /* dump-time address */
	uint64_t nr_pages;
	bool urgent; /* for a fault */
	uint64_t got; /* pages in the answer (1 <= got <= nr_pages) */
	const uint8_t *data;
	/* The loop's: the first fault that waits for it, for the latency figures. */
	struct lazy_task *fault_task;
	uint64_t fault_ns;
};

struct remote_stats {
	uint64_t requests, urgent_requests, pages, reconnects;
	uint64_t dup_pages; /* received, but no task wanted them any more */
	bool urgent_channel, tls;
	enum ps_layout layout;
};

struct remote;

/* Connect (within the reconnect timeout); no thread yet, so the daemon may still fork. */
int remote_open(struct remote **out, const struct crimg *img, const struct remote_opts *o);
/* Start receiving (the receiver thread). */
int remote_start(struct remote *r);
/* CLEAN: say CLOSE and wait for the server's status; else just drop the connections. */
void remote_close(struct remote *r, bool clean);
/* Readable (eventfd) when answers wait or the source failed. */
int remote_fd(const struct remote *r);
/* Ask for NR pages at IMG_ADDR of task VPID; -EBUSY when no buffer is free. */
int remote_get(struct remote *r, pid_t vpid, uint64_t img_addr, uint64_t nr, bool urgent, struct ps_req **out);
/* A request not yet released covering the page (URGENT_ONLY: a fault's request). */
struct ps_req *remote_find(struct remote *r, pid_t vpid, uint64_t img_addr, bool urgent_only);
/* Is a background request possible now? */
bool remote_bulk_slot(struct remote *r);
unsigned int remote_bulk_pages(const struct remote *r);
/* Is the urgent channel (second connection, our page server only) in use? */
bool remote_has_urgent(struct remote *r);
/* 1 and *out: an answer; 0: none now; -EIO: the source failed for good (logged). */
int remote_next(struct remote *r, struct ps_req **out);
/* The loop is done with an answer's data. */
void remote_release(struct remote *r, struct ps_req *q);
/* Requests not yet answered, and the first few of them in words. */
size_t remote_describe_inflight(const struct remote *r, char *buf, size_t len);
const char *remote_peer(const struct remote *r);
void remote_get_stats(struct remote *r, struct remote_stats *st);
/*
 * The calling thread carries only faults' pages (the urgent channel, at either end): a
 * nice value 10 better than it has, so that on a CPU shared with the background
 * transfer its few us of work do not wait behind a 1 MiB answer being sent or copied.
 * Needs CAP_SYS_NICE; without it nothing changes, and WHO says so at info level.
 */
void urgent_thread_priority(const char *who);

/* ---- handoff.c: lazy-pages.socket, the criu restore side ---- */

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

/* ---- loop.c: serving faults and populating in the background ---- */

struct daemon_opts {
	const char *stats_file; /* --stats: JSON written at exit ("-": stdout only), or NULL */
	/* --busy-poll: after a fault, poll the uffds this long before sleeping in epoll. */
	uint64_t busy_poll_ns;
	unsigned int copy_threads; /* --copy-threads: 0, or 1 thread copying background runs */
	int loop_cpu;		   /* --loop-cpu: pin the loop thread alone there, or -1 */
	const char *record_profile; /* --record-profile: written at a successful exit */
	const struct profile *prefetch; /* --prefetch-profile, loaded, or NULL */
	uint64_t fingerprint;		/* profile_fingerprint() of the images */
	const struct remote_opts *remote; /* --page-server, or NULL: the local pages files */
	/* Called once lazy-pages.socket listens, before accepting: daemonize, report ready. */
	int (*ready)(void *arg);
	void *ready_arg;
};

/* Serve the restore of IMG until every task is complete or gone. Returns the exit status. */
int daemon_serve(const struct crimg *img, const struct daemon_opts *o);

/* ---- daemon.c: shared with page_server.c ---- */

int daemon_parse_verbosity(const char *arg, int cur);
/* --pidfile: created with O_EXCL (an fd, or -errno, logged), then given the pid. */
int daemon_create_pidfile(const char *path);
int daemon_fill_pidfile(int fd, const char *path, pid_t pid);
int daemon_write_pidfile(const char *path, pid_t pid);
void daemon_null_stdio(void);

/* ---- stats.c ---- */

void stats_add_latency(struct fault_stats *st, uint64_t ns);

/* Daemon-wide figures of the loop, for the JSON and the end-of-run line. */
struct loop_stats {
	uint64_t busy_poll_us;	 /* the setting */
	uint64_t polled_wakeups; /* faults found by polling, without sleeping */
	uint64_t epoll_sleeps;	 /* blocking epoll_wait calls */
	uint64_t profile_records; /* --prefetch-profile records read */
	uint64_t profile_skipped_records; /* for tasks the images do not have */
	uint64_t recorded_records; /* --record-profile records written */
	double prefetch_done_ms;   /* when the last task's profile was copied (since the start) */
	uint64_t copy_threads;	   /* the setting, as used: 0 for a page server */
	uint64_t copy_thread_bytes;	     /* bytes the copy thread copied: background and prefetch */
	uint64_t copy_thread_prefetch_bytes; /* of them, profile pages */
};
void stats_set_loop(const struct loop_stats *ls);
/* Remote figures to add to the JSON (the pointer is kept until it is written). */
void stats_set_remote(const struct remote_stats *rs);
/* --display-stats: stats_write_json() prints the JSON on stdout as well. */
void stats_set_display(bool on);
/*
 * wall_s: from the daemon's start; populate_s: from the restore's finish word;
 * from_uffd_s: from the first uffd handed over, when copying can begin (the span to
 * set against the UFFDIO_COPY floor). Each ends when the last task is complete.
 */
int stats_write_json(const char *path, struct lazy_task **tasks, size_t nr, double wall_s, double populate_s,
		     double from_uffd_s);

#endif
