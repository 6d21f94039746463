// SPDX-License-Identifier: MIT
/*
 * Image files: header magic and the `u32 len, payload` record framing.
 *
 * Files are read whole into memory: protobuf images are small next to the pages files
 * (which are never read here), and a private copy cannot change or SIGBUS under us the
 * way a mapping of a file being rewritten could.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crimg_int.h"

static void verr(struct crimg_error *err, const char *prefix, const char *fmt, va_list ap)
{
	size_t n = 0;

	if (!err)
		return;
	if (prefix)
		n = snprintf(err->msg, sizeof(err->msg), "%s", prefix);
	if (n < sizeof(err->msg))
		vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
}

int crimg_err(struct crimg_error *err, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(err, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

int crimg_file_err(const struct crimg_file *f, size_t off, struct crimg_error *err, int ret, const char *fmt, ...)
{
	char prefix[sizeof(err->msg)];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "%s: offset %zu: ", f->path, off);
	va_start(ap, fmt);
	verr(err, prefix, fmt, ap);
	va_end(ap);
	return ret;
}

char *crimg_path(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	/* Host order, as CRIU writes it; memcpy because records need not be aligned. */
	memcpy(&v, p, sizeof(v));
	return v;
}

static int read_all(struct crimg_file *f, int fd, struct crimg_error *err)
{
	struct stat st;
	size_t got = 0;

	if (fstat(fd, &st))
		return crimg_err(err, -errno, "%s: cannot stat: %s", f->path, strerror(errno));
	/* O_NONBLOCK kept us from hanging on a FIFO; anything but a file is refused here. */
	if (!S_ISREG(st.st_mode))
		return crimg_err(err, -EINVAL, "%s: not a regular file", f->path);
	if ((uint64_t)st.st_size > CRIMG_MAX_FILE_SIZE)
		return crimg_err(err, -EFBIG, "%s: file size %lld exceeds the limit of %llu bytes", f->path,
				 (long long)st.st_size, CRIMG_MAX_FILE_SIZE);

	f->buf = malloc(st.st_size ? st.st_size : 1);
	if (!f->buf)
		return crimg_err(err, -ENOMEM, "%s: out of memory for %lld bytes", f->path, (long long)st.st_size);

	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, f->buf + got, st.st_size - got, got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return crimg_err(err, -errno, "%s: offset %zu: read failed: %s", f->path, got, strerror(errno));
		if (n == 0)
			break; /* shrank since fstat: the bytes we have are the file */
		got += n;
	}
	f->size = got;
	return 0;
}

static int check_magic(struct crimg_file *f, uint32_t magic, unsigned int flags, struct crimg_error *err)
{
	uint32_t first;

	if (f->size < 4)
		return crimg_file_err(f, 0, err, -EINVAL, "file too short for its magic (%zu bytes)", f->size);
	first = get_u32(f->buf);

	if (flags & CRIMG_FILE_BARE_MAGIC) {
		if (first != magic)
			return crimg_file_err(f, 0, err, -EINVAL, "bad magic 0x%08x (expected 0x%08x)", first, magic);
		f->pos = 4;
		return 0;
	}

	/* Image version 1 had no common prefix: the type magic comes first. */
	if (first == magic) {
		f->pos = 4;
		return 0;
	}
	if (first != IMG_COMMON_MAGIC)
		return crimg_file_err(f, 0, err, -EINVAL, "bad magic 0x%08x (expected 0x%08x)", first,
				      IMG_COMMON_MAGIC);
	if (f->size < 8)
		return crimg_file_err(f, 4, err, -EINVAL, "file ends inside its header (%zu bytes)", f->size);
	if (get_u32(f->buf + 4) != magic)
		return crimg_file_err(f, 4, err, -EINVAL, "bad magic 0x%08x (expected 0x%08x)", get_u32(f->buf + 4),
				      magic);
	f->pos = 8;
	return 0;
}

int crimg_file_open(struct crimg_file *f, const char *dir, const char *name, uint32_t magic, unsigned int flags,
		    struct crimg_error *err)
{
	int fd = -1, ret;

	memset(f, 0, sizeof(*f));
	f->path = crimg_path(dir, name);
	if (!f->path)
		return crimg_err(err, -ENOMEM, "%s/%s: out of memory", dir, name);

	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		ret = crimg_err(err, -errno, "%s: cannot open: %s", f->path, strerror(errno));
		goto fail;
	}
	ret = read_all(f, fd, err);
	if (ret)
		goto fail;
	ret = check_magic(f, magic, flags, err);
	if (ret)
		goto fail;
	close(fd);
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	crimg_file_close(f);
	return ret;
}

int crimg_file_next(struct crimg_file *f, const uint8_t **data, size_t *len, struct crimg_error *err)
{
	size_t left = f->size - f->pos;
	uint32_t n;

	if (!left)
		return 0;
	if (left < 4)
		return crimg_file_err(f, f->pos, err, -EINVAL, "truncated record header: %zu of 4 bytes", left);
	n = get_u32(f->buf + f->pos);
	if (n > CRIMG_MAX_RECORD_SIZE)
		return crimg_file_err(f, f->pos, err, -EINVAL, "record length %u exceeds the limit of %llu bytes", n,
				      CRIMG_MAX_RECORD_SIZE);
	if (n > left - 4)
		return crimg_file_err(f, f->pos, err, -EINVAL, "record length %u runs past end of file (size %zu)", n,
				      f->size);

	f->rec_off = f->pos;
	*data = f->buf + f->pos + 4;
	*len = n;
	f->pos += 4 + (size_t)n;
	return 1;
}

int crimg_file_expect_end(struct crimg_file *f, struct crimg_error *err)
{
	if (f->pos != f->size)
		return crimg_file_err(f, f->pos, err, -EINVAL, "unexpected data after the only record (%zu bytes)",
				      f->size - f->pos);
	return 0;
}

void crimg_file_close(struct crimg_file *f)
{
	free(f->buf);
	free(f->path);
	memset(f, 0, sizeof(*f));
}

int crimg_file_next_msg(struct crimg_file *f, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
			struct crimg_error *err)
{
	const uint8_t *data;
	size_t len;
	int ret;

	*msg = NULL;
	ret = crimg_file_next(f, &data, &len, err);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return crimg_file_err(f, f->pos, err, -EINVAL, "no %s record", desc->name);
	*msg = protobuf_c_message_unpack(desc, NULL, len, data);
	if (!*msg)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "cannot decode %s (%zu bytes)", desc->name, len);
	return 0;
}
