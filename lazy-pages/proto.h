/* SPDX-License-Identifier: MIT */
/*
 * CRIU's page-server wire format (shared/spec/page-server.md) and the transport both ends
 * of lazy-uffd use: a TCP connection, optionally inside GnuTLS (tls.c).
 *
 * The header is a raw C struct in host order with no version field. CRIU 4.1 sends 24
 * bytes (u32 cmd, u32 nr_pages, u64 vaddr, u64 dst_id); 4.2 widened nr_pages to u64,
 * which adds 4 bytes of padding after cmd: 32 bytes. The two cannot talk to each other,
 * so every header here is encoded and decoded for one layout, byte by byte.
 */
#ifndef LAZY_UFFD_PROTO_H
#define LAZY_UFFD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PS_IOV_ADD_F	   6
#define PS_IOV_GET	   7
#define PS_IOV_CLOSE	   0x1023
#define PS_IOV_FORCE_CLOSE 0x1024
/*
 * lazy-uffd's own: the first request on a second connection to our page server (the
 * urgent channel). Never sent to a CRIU server: the daemon opens that connection only
 * after the first one has been answered, when a CRIU server no longer listens.
 */
#define PS_IOV_LU_HELLO 0x4c55

#define PS_CMD_MASK	0xffffu
#define PS_FLAGS_SHIFT	16
#define PS_PE_PRESENT	4
/*
 * The answer to a GET: ADD_F with PE_PRESENT, then nr_pages pages of the sender's size
 * (CRIU's run-time page size; ours is PAGE_SZ): both ends must have the same one.
 */
#define PS_REPLY_PAGES ((PS_PE_PRESENT << PS_FLAGS_SHIFT) | PS_IOV_ADD_F)
/* Our page server's refusal of a GET (no such lazy page): ADD_F, no flags, 0 pages. */
#define PS_REPLY_REFUSED PS_IOV_ADD_F

enum ps_layout {
	PS_LAYOUT_41 = 24, /* CRIU <= 4.1 */
	PS_LAYOUT_42 = 32, /* CRIU >= 4.2 */
};
#define PS_HDR_MAX 32

struct ps_hdr {
	uint32_t cmd;
	uint64_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

static inline size_t ps_hdr_size(enum ps_layout l)
{
	return (size_t)l;
}

/* Encode H into BUF (ps_hdr_size(L) bytes); padding is zero. */
void ps_hdr_encode(enum ps_layout l, const struct ps_hdr *h, uint8_t *buf);
void ps_hdr_decode(enum ps_layout l, const uint8_t *buf, struct ps_hdr *h);
const char *ps_layout_name(enum ps_layout l);

/* ---- tls.c: the transport ---- */

/* CRIU's TLS options, with the same defaults (page-server.md section 8). */
struct tls_opts {
	bool on;
	const char *cacert, *cacrl, *cert, *key;
	bool no_cn_verify;
};

struct tls_creds;

/* Load the certificates named by O (absolute paths) once. */
int tls_creds_load(struct tls_creds **out, const struct tls_opts *o);
void tls_creds_free(struct tls_creds *c);

/* One connection: a socket, and a TLS session on it when creds are given. */
struct chan {
	int fd;
	void *tls; /* gnutls_session_t, or NULL */
	int tls_err; /* the last GnuTLS error chan_recv() turned into -EPROTO */
};

/*
 * Start TLS on C->fd as client or server: handshake within TIMEOUT_MS, then check the
 * peer's certificate against the CA and, unless no_cn_verify, against NAME (the
 * --address, as CRIU does on both sides; NULL: no name check). On failure *why says what.
 */
int chan_tls_start(struct chan *c, struct tls_creds *creds, bool server, const char *name, int timeout_ms, char *why,
		   size_t why_len);
/* Send all of BUF; -errno (never SIGPIPE), -ETIMEDOUT once a SO_SNDTIMEO runs out, over TLS too. */
int chan_send_all(struct chan *c, const void *buf, size_t len, bool more);
/* Send LEN bytes of FD from OFF (sendfile, or read and encrypt under TLS). */
int chan_send_file(struct chan *c, int fd, uint64_t off, uint64_t len);
/*
 * Read up to LEN bytes, waiting at most TIMEOUT_MS (-1: forever). Returns the count,
 * 0 at EOF, -ETIMEDOUT, or -errno (-EPROTO for a TLS error).
 */
ssize_t chan_recv(struct chan *c, void *buf, size_t len, int timeout_ms);
/*
 * Wait at most TIMEOUT_MS for C to have bytes (or EOF) to read: 1. 0 on timeout, or when
 * WAKE_FD (a non-blocking eventfd, then emptied) was signalled first. -errno on error.
 */
int chan_wait(struct chan *c, int wake_fd, int timeout_ms);
/* What the last -EPROTO from chan_recv() was, in GnuTLS's words. */
const char *chan_tls_error(const struct chan *c);
/* Read exactly LEN bytes; -ETIMEDOUT when nothing came for TIMEOUT_MS, -EPIPE at EOF. */
int chan_recv_all(struct chan *c, void *buf, size_t len, int timeout_ms);
/* Shut down (waking a reader blocked on it in another thread); the fd stays open. */
void chan_shutdown(struct chan *c);
/* End TLS politely (when CLEAN) and close. */
void chan_close(struct chan *c, bool clean);
/*
 * Close a plain connection whose writing side is shut already, without a reset and
 * without waiting for the peer's end: what it still sends meets a closed socket.
 */
void chan_close_sent(struct chan *c);

#endif
