// SPDX-License-Identifier: MIT
/*
 * chan_send_all to a peer that stopped reading gives up when the socket's SO_SNDTIMEO
 * runs out, over TLS as over plain TCP (issue 16, item 2: over TLS it retried
 * GNUTLS_E_AGAIN for ever). The peer is the other end of a socketpair that completes
 * the handshake and then reads nothing; the certificate is made here, self-signed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "../../lazy-pages/proto.h"
#include "tu.h"

#define SEND_LEN (16 << 20)

static char cert_path[4096], key_path[4096];
static struct tls_creds *creds;

static int write_datum(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");
	int ret;

	if (!f)
		return -errno;
	ret = fwrite(d->data, 1, d->size, f) == d->size ? 0 : -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* A self-signed certificate that is its own CA, and its key, as PEM files. */
static int make_cert(const char *dir)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = {NULL, 0};
	unsigned char serial = 1;
	const char *cn = "lazy-uffd unit test";
	time_t now = time(NULL);
	int ret;

	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	ret = gnutls_x509_privkey_init(&key);
	if (!ret)
		ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
						   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (!ret)
		ret = gnutls_x509_crt_init(&crt);
	if (!ret)
		ret = gnutls_x509_crt_set_version(crt, 3);
	if (!ret)
		ret = gnutls_x509_crt_set_serial(crt, &serial, 1);
	if (!ret)
		ret = gnutls_x509_crt_set_activation_time(crt, now - 3600);
	if (!ret)
		ret = gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	if (!ret)
		ret = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
	if (!ret)
		ret = gnutls_x509_crt_set_key(crt, key);
	if (!ret)
		ret = gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
	if (!ret)
		ret = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
	if (!ret)
		ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	if (!ret)
		ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
	if (!ret) {
		ret = write_datum(cert_path, &d);
		gnutls_free(d.data);
		d.data = NULL;
		if (!ret)
			ret = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);
		if (!ret)
			ret = write_datum(key_path, &d);
		gnutls_free(d.data);
	}
	if (ret)
		tu_note("making a certificate: %s", ret < -1000 ? strerror(-ret) : gnutls_strerror(ret));
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return ret;
}

struct peer {
	int fd, quit;
	int ret;
	char why[256];
};

/* The TLS server end: the handshake, then nothing read until told to quit. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct chan ch = {.fd = p->fd};
	char b;

	p->ret = chan_tls_start(&ch, creds, true, NULL, 5000, p->why, sizeof(p->why));
	if (read(p->quit, &b, 1) < 0) {
		/* Woken by the write end closing just as well. */
	}
	if (!p->ret)
		chan_close(&ch, false);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: chan_send_all to a peer that reads nothing still runs after 30 s\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* Exiting anyway. */
	}
	_exit(T_FAIL);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Send SEND_LEN bytes on FD's channel (TLS when TLS) that nobody reads. */
static void stalled_send(bool tls)
{
	struct timeval tv = {.tv_sec = 1};
	struct peer p = {.ret = -1};
	struct chan ch = {.fd = -1};
	int sv[2], q[2];
	pthread_t thr;
	uint8_t *buf;
	double t0, t;
	char why[256];
	int ret;

	buf = calloc(1, SEND_LEN);
	CHECK(buf);
	if (!buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe(q)) {
		CHECK(0, "socketpair/pipe: %m");
		free(buf);
		return;
	}
	ch.fd = sv[0];
	p.fd = sv[1];
	p.quit = q[0];
	if (tls) {
		CHECK(!pthread_create(&thr, NULL, peer_main, &p));
		ret = chan_tls_start(&ch, creds, false, NULL, 5000, why, sizeof(why));
		CHECK(!ret, "client handshake: %s", why);
		if (ret) {
			close(q[1]);
			pthread_join(thr, NULL);
			goto out;
		}
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	t0 = now_s();
	ret = chan_send_all(&ch, buf, SEND_LEN, false);
	t = now_s() - t0;
	CHECK(ret == -ETIMEDOUT, "%s: chan_send_all returned %d (%s), want -ETIMEDOUT", tls ? "TLS" : "plain", ret,
	      strerror(-ret));
	CHECK(t < 10, "%s: chan_send_all took %.1f s with a 1 s SO_SNDTIMEO", tls ? "TLS" : "plain", t);
	if (tls) {
		close(q[1]);
		pthread_join(thr, NULL);
		CHECK(!p.ret, "server handshake: %s", p.why);
	} else {
		close(q[1]);
	}
out:
	chan_close(&ch, false);
	close(sv[1]);
	close(q[0]);
	free(buf);
}

int main(void)
{
	struct tls_opts o = {.on = true, .no_cn_verify = true};
	const char *dir = tu_tmpdir();

	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(30);
	if (!dir || make_cert(dir)) {
		CHECK(0, "no certificate");
		return tu_done();
	}
	o.cacert = o.cert = cert_path;
	o.key = key_path;
	o.cacrl = NULL;
	if (tls_creds_load(&creds, &o)) {
		CHECK(0, "tls_creds_load failed");
		return tu_done();
	}
	stalled_send(false);
	stalled_send(true);
	tls_creds_free(creds);
	return tu_done();
}
