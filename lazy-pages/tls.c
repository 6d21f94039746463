// SPDX-License-Identifier: MIT
/*
 * The page-server transport: a TCP socket, optionally wrapped in GnuTLS with X.509
 * certificates checked both ways, with CRIU's options and defaults (page-server.md §8),
 * and the header codec for CRIU 4.1's and 4.2's layouts.
 *
 * GnuTLS lets one thread send while another receives on the same session; the daemon
 * relies on that (its receiver thread reads, the loop sends requests).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "lazy_pages.h"
#include "proto.h"

#define DEFAULT_CACERT "/etc/pki/CA/cacert.pem"
#define DEFAULT_CACRL  "/etc/pki/CA/cacrl.pem"
#define DEFAULT_CERT   "/etc/pki/criu/cert.pem"
#define DEFAULT_KEY    "/etc/pki/criu/private/key.pem"

/* ---- header codec ---- */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

void ps_hdr_encode(enum ps_layout l, const struct ps_hdr *h, uint8_t *buf)
{
	memset(buf, 0, ps_hdr_size(l));
	put32(buf, h->cmd);
	if (l == PS_LAYOUT_41) {
		put32(buf + 4, (uint32_t)h->nr_pages);
		put64(buf + 8, h->vaddr);
		put64(buf + 16, h->dst_id);
	} else {
		put64(buf + 8, h->nr_pages);
		put64(buf + 16, h->vaddr);
		put64(buf + 24, h->dst_id);
	}
}

void ps_hdr_decode(enum ps_layout l, const uint8_t *buf, struct ps_hdr *h)
{
	h->cmd = get32(buf);
	if (l == PS_LAYOUT_41) {
		h->nr_pages = get32(buf + 4);
		h->vaddr = get64(buf + 8);
		h->dst_id = get64(buf + 16);
	} else {
		h->nr_pages = get64(buf + 8);
		h->vaddr = get64(buf + 16);
		h->dst_id = get64(buf + 24);
	}
}

const char *ps_layout_name(enum ps_layout l)
{
	return l == PS_LAYOUT_41 ? "CRIU 4.1 (24-byte headers)" : "CRIU 4.2 (32-byte headers)";
}

/* ---- credentials ---- */

struct tls_creds {
	gnutls_certificate_credentials_t x509;
	bool no_cn_verify;
};

int tls_creds_load(struct tls_creds **out, const struct tls_opts *o)
{
	const char *cacert = o->cacert ? o->cacert : DEFAULT_CACERT;
	const char *cacrl = o->cacrl ? o->cacrl : DEFAULT_CACRL;
	const char *cert = o->cert ? o->cert : DEFAULT_CERT;
	const char *key = o->key ? o->key : DEFAULT_KEY;
	struct tls_creds *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->no_cn_verify = o->no_cn_verify;
	ret = gnutls_certificate_allocate_credentials(&c->x509);
	if (ret < 0) {
		pr_err("tls: cannot allocate credentials: %s", gnutls_strerror(ret));
		free(c);
		return -ENOMEM;
	}
	/* As CRIU: the system's trusted CAs count too unless a CA file was named. */
	if (!o->cacert) {
		ret = gnutls_certificate_set_x509_system_trust(c->x509);
		if (ret < 0)
			pr_warn("tls: cannot load the system's trusted CAs: %s", gnutls_strerror(ret));
	}
	ret = gnutls_certificate_set_x509_trust_file(c->x509, cacert, GNUTLS_X509_FMT_PEM);
	if (ret <= 0) {
		if (o->cacert) {
			pr_err("tls: --tls-cacert %s: no CA certificate loaded%s%s", cacert, ret < 0 ? ": " : "",
			       ret < 0 ? gnutls_strerror(ret) : "");
			goto err;
		}
		pr_info("tls: no CA certificates in %s", cacert);
	}
	if (!access(cacrl, R_OK)) {
		ret = gnutls_certificate_set_x509_crl_file(c->x509, cacrl, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			pr_err("tls: --tls-cacrl %s: %s", cacrl, gnutls_strerror(ret));
			goto err;
		}
	} else if (o->cacrl) {
		pr_err("tls: --tls-cacrl %s: %m", cacrl);
		goto err;
	}
	ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		pr_err("tls: certificate %s with key %s: %s", cert, key, gnutls_strerror(ret));
		goto err;
	}
	*out = c;
	return 0;
err:
	gnutls_certificate_free_credentials(c->x509);
	free(c);
	return -EINVAL;
}

void tls_creds_free(struct tls_creds *c)
{
	if (!c)
		return;
	gnutls_certificate_free_credentials(c->x509);
	free(c);
}

/* ---- channel ---- */

int chan_tls_start(struct chan *c, struct tls_creds *creds, bool server, const char *name, int timeout_ms, char *why,
		   size_t why_len)
{
	gnutls_session_t s;
	unsigned int status = 0;
	int ret;

	ret = gnutls_init(&s, server ? GNUTLS_SERVER : GNUTLS_CLIENT);
	if (ret < 0) {
		snprintf(why, why_len, "gnutls_init: %s", gnutls_strerror(ret));
		return -ENOMEM;
	}
	ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds->x509);
	if (ret >= 0)
		ret = gnutls_set_default_priority(s);
	if (ret < 0) {
		snprintf(why, why_len, "TLS session setup: %s", gnutls_strerror(ret));
		gnutls_deinit(s);
		return -EINVAL;
	}
	if (server) {
		/* Mutual authentication: the client must show a certificate. */
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		gnutls_certificate_send_x509_rdn_sequence(s, 1);
	}
	gnutls_transport_set_int(s, c->fd);
	gnutls_handshake_set_timeout(s, timeout_ms > 0 ? (unsigned int)timeout_ms : GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
	do {
		ret = gnutls_handshake(s);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0) {
		snprintf(why, why_len, "TLS handshake failed: %s", gnutls_strerror(ret));
		gnutls_deinit(s);
		return -EPROTO;
	}
	ret = gnutls_certificate_verify_peers3(s, creds->no_cn_verify ? NULL : name, &status);
	if (ret < 0 || status) {
		gnutls_datum_t txt = {NULL, 0};

		if (ret >= 0)
			gnutls_certificate_verification_status_print(status, gnutls_certificate_type_get(s), &txt, 0);
		snprintf(why, why_len, "the peer's certificate is not accepted%s%s: %s",
			 name && !creds->no_cn_verify ? " for " : "", name && !creds->no_cn_verify ? name : "",
			 ret < 0    ? gnutls_strerror(ret)
			 : txt.data ? (const char *)txt.data
				    : "untrusted");
		gnutls_free(txt.data);
		gnutls_deinit(s);
		return -EACCES;
	}
	c->tls = s;
	return 0;
}

int chan_send_all(struct chan *c, const void *buf, size_t len, bool more)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n;

		if (c->tls) {
			n = gnutls_record_send(c->tls, p, len);
			if (n == GNUTLS_E_INTERRUPTED)
				continue;
			/*
			 * On a blocking socket EAGAIN is SO_SNDTIMEO running out: the peer took
			 * nothing for that long. Retrying would spin for as long as it stays so
			 * (forever, for a peer that stopped reading), as plain TCP does not.
			 */
			if (n == GNUTLS_E_AGAIN)
				return -ETIMEDOUT;
			if (n < 0)
				return -EPIPE;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return -ETIMEDOUT;
			if (n < 0)
				return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int chan_send_file(struct chan *c, int fd, uint64_t off, uint64_t len)
{
	const size_t bufsz = 256 << 10;
	uint8_t *buf;
	int ret = 0;

	if (!c->tls) {
		off_t o = (off_t)off;

		while (len) {
			ssize_t n = sendfile(c->fd, fd, &o, len > (1ULL << 30) ? (1ULL << 30) : len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -ENODATA; /* the file is shorter than the image says */
			len -= n;
		}
		return 0;
	}
	buf = malloc(bufsz);
	if (!buf)
		return -ENOMEM;
	while (len && !ret) {
		size_t want = len < bufsz ? len : bufsz;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -ENODATA;
			break;
		}
		ret = chan_send_all(c, buf, n, false);
		off += n;
		len -= n;
	}
	free(buf);
	return ret;
}

ssize_t chan_recv(struct chan *c, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	ssize_t n;
	int ret;

	if (!c->tls || !gnutls_record_check_pending(c->tls)) {
		do
			ret = poll(&p, 1, timeout_ms);
		while (ret < 0 && errno == EINTR);
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
	}
	if (!c->tls) {
		do
			n = recv(c->fd, buf, len, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == ECONNRESET ? 0 : -errno;
		return n;
	}
	/* A record may arrive in pieces: bound the wait for the rest of it too. */
	gnutls_record_set_timeout(c->tls, timeout_ms < 0 ? 0 : (unsigned int)timeout_ms);
	do
		n = gnutls_record_recv(c->tls, buf, len);
	while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	if (n == GNUTLS_E_TIMEDOUT)
		return -ETIMEDOUT;
	if (n == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	if (n < 0) {
		c->tls_err = (int)n;
		return -EPROTO;
	}
	return n;
}

int chan_wait(struct chan *c, int wake_fd, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
	uint64_t v;
	int ret;

	if (c->tls && gnutls_record_check_pending(c->tls))
		return 1;
	do
		ret = poll(p, 2, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (p[1].revents & POLLIN) {
		/* An eventfd: one read empties it. Nothing to read is as good. */
		if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
		return 0;
	}
	return ret > 0;
}

const char *chan_tls_error(const struct chan *c)
{
	return c->tls_err ? gnutls_strerror(c->tls_err) : "no TLS error";
}

int chan_recv_all(struct chan *c, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = chan_recv(c, p, len, timeout_ms);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= n;
	}
	return 0;
}

void chan_shutdown(struct chan *c)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

/* The daemon's connections are set to reset on close (dial): not one that ends well. */
static void close_no_reset(struct chan *c)
{
	struct linger l = {.l_onoff = 0, .l_linger = 0};

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(c->fd);
	c->fd = -1;
}

void chan_close_sent(struct chan *c)
{
	if (c->fd >= 0)
		close_no_reset(c);
}

void chan_close(struct chan *c, bool clean)
{
	if (c->tls) {
		if (clean)
			gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0 && clean) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		uint8_t junk[4096];
		int i;

		/*
		 * Half-close, then read until the peer closes too: closing with its last bytes
		 * (a TLS close_notify, say) unread would reset the connection, and CRIU's server
		 * takes a reset after CLOSE for a failed session.
		 */
		shutdown(c->fd, SHUT_WR);
		for (i = 0; i < 25 && poll(&p, 1, 20) >= 0; i++) {
			ssize_t n = p.revents ? recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) : -1;

			if (n == 0 || (n < 0 && p.revents && errno != EAGAIN && errno != EINTR))
				break;
		}
	}
	if (c->fd >= 0 && clean)
		close_no_reset(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
