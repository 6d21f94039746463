// SPDX-License-Identifier: MIT
/*
 * Damaged images never crash the reader: every protobuf image file of the good, zombie
 * and chain scenarios is cut at every length and has bytes overwritten (seeded, so
 * runs repeat), then opened. Each open either succeeds, and then every lookup and
 * summary runs, or fails with a known code and one line naming a file of the image.
 * Run under `make asan` this is the out-of-bounds and leak check of the reader.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crimg.h"
#include "tu.h"

#define MUTATIONS 300

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int opens, opened;

static void exercise(const struct crimg *img)
{
	struct crimg_summary sum;
	struct crimg_error err;
	struct crimg_loc loc;
	size_t i, j;

	for (; img; img = crimg_parent(img)) {
		for (i = 0; i < crimg_nr_tasks(img); i++) {
			const struct crimg_task *t = crimg_task(img, i);

			crimg_summarize(t, &sum);
			for (j = 0; j < t->nr_vmas; j++) {
				crimg_summarize_vma(t, &t->vmas[j], &sum);
				crimg_locate(img, t, t->vmas[j].start, &loc, &err);
				crimg_locate(img, t, t->vmas[j].end - 1, &loc, &err);
				crimg_locate(img, t, t->vmas[j].end, &loc, &err);
			}
			for (j = 0; j < t->nr_pmes; j++) {
				uint64_t end = t->pmes[j].vaddr + t->pmes[j].nr_pages * CRIMG_PAGE_SIZE;

				crimg_locate(img, t, t->pmes[j].vaddr, &loc, &err);
				crimg_locate(img, t, end - 1, &loc, &err);
				crimg_locate(img, t, end, &loc, &err);
			}
		}
	}
}

static int try_open(const char *dir, const char *abs, const char *what)
{
	struct crimg_error err;
	struct crimg *img;
	int ret;

	opens++;
	err.msg[0] = '\0';
	ret = crimg_open(dir, &img, &err);
	if (!ret) {
		opened++;
		exercise(img);
		crimg_close(img);
		return 0;
	}
	CHECK(ret == -EINVAL || ret == -ENOENT || ret == -ELOOP, "%s: ret %d: %s", what, ret, err.msg);
	CHECK(tu_starts_with(err.msg, dir) || tu_starts_with(err.msg, abs), "%s: message names no image file: %s", what,
	      err.msg);
	CHECK(!strchr(err.msg, '\n'), "%s: multi-line message", what);
	return ret;
}

static int put(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	int ok = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static void fuzz_file(const char *top, const char *abs, const char *path)
{
	uint8_t orig[65536], buf[65536];
	char what[PATH_MAX + 64];
	size_t size, len, i;
	int fd, m;

	fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	if (fd < 0)
		return;
	size = read(fd, orig, sizeof(orig));
	close(fd);
	if (size == (size_t)-1 || size >= sizeof(orig))
		return;

	for (len = 0; len < size; len++) {
		snprintf(what, sizeof(what), "%s cut at %zu", path, len);
		CHECK(put(path, orig, len) == 0, "write %s", path);
		try_open(top, abs, what);
	}
	for (m = 0; m < MUTATIONS && size; m++) {
		int n = 1 + next_rand() % 4;

		memcpy(buf, orig, size);
		for (i = 0; i < (size_t)n; i++) {
			size_t at = next_rand() % size;

			/* Half bit flips, half arbitrary bytes; 0xff often makes lengths and varints huge. */
			if (next_rand() & 1)
				buf[at] ^= 1 << (next_rand() % 8);
			else
				buf[at] = next_rand();
		}
		snprintf(what, sizeof(what), "%s mutation %d", path, m);
		CHECK(put(path, buf, size) == 0, "write %s", path);
		try_open(top, abs, what);
	}
	CHECK(put(path, orig, size) == 0, "restore %s", path);
}

static void fuzz_dir(const char *top, const char *abs, const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;

		if (n < 4 || strcmp(de->d_name + n - 4, ".img") || !strncmp(de->d_name, "pages-", 6))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		fuzz_file(top, abs, path);
	}
	closedir(d);
}

int main(void)
{
	static const char *const scenarios[] = {"good41", "good42", "zombie", "chain"};
	char sub[PATH_MAX], abs[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const char *dir = tu_scenario(scenarios[i]);

		if (!dir || !realpath(dir, abs))
			continue;
		fuzz_dir(dir, abs, dir);
		snprintf(sub, sizeof(sub), "%s/p1", dir);
		fuzz_dir(dir, abs, sub);
		snprintf(sub, sizeof(sub), "%s/p2", dir);
		fuzz_dir(dir, abs, sub);
		/* Every file is back as it was: the image must open again. */
		CHECK(try_open(dir, abs, "restored") == 0, "%s does not open after the fuzzing", dir);
	}
	fprintf(stderr, "# %d opens, %d succeeded\n", opens, opened);
	CHECK(opens > 1000, "only %d opens", opens);
	return tu_done();
}
