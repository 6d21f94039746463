// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for our page server's request parser: the input is what a client
 * sends on one connection (any number of requests, either header layout), served from
 * the real dump in fuzz/base. The session runs as `lazy-uffd page-server` runs it, on one
 * end of a socketpair; a thread drains the answers. Whatever the bytes, the session must
 * end (EOF, CLOSE or a logged error) without a crash, a leak or a hang.
 *
 * The server's code is included rather than linked: its session functions are static,
 * and the target should test them as built, not through a test-only entry point.
 */
#include <pthread.h>

#include "../lazy-pages/page_server.c"

static struct server fuzz_srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("LAZY_UFFD_FUZZ_BASE");
	struct crimg_error err;
	struct crimg *img;
	FILE *null = fopen("/dev/null", "we");

	(void)argc;
	(void)argv;
	/* Refusals and closed sessions are the expected outcome of most inputs: no log. */
	log_setup(null, LOG_MSG, LOG_STYLE_CRIU);
	if (crimg_open(base ? base : FUZZ_BASE, &img, &err)) {
		fprintf(stderr, "fuzz base: %s\n", err.msg);
		exit(1);
	}
	fuzz_srv.img = img;
	fuzz_srv.fallback = PS_LAYOUT_41;
	pthread_mutex_init(&fuzz_srv.mu, NULL);
	pthread_cond_init(&fuzz_srv.cv, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s = { .srv = &fuzz_srv, .id = 1, .peer = "fuzz" };
	pthread_t th;
	size_t off = 0;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* The drain must run before the input is written: answers could fill the pair. */
	if (pthread_create(&th, NULL, drain, &sv[0]))
		abort();
	while (off < size) {
		ssize_t n = write(sv[0], data + off, size - off);

		if (n <= 0)
			break;
		off += n;
	}
	shutdown(sv[0], SHUT_WR);
	s.ch.fd = sv[1];
	s.ch.tls = NULL;
	serve_session(&s);
	close(sv[1]);
	pthread_join(th, NULL);
	close(sv[0]);
	return 0;
}
