// SPDX-License-Identifier: MIT
/*
 * Opening an image directory and its chain of parents (images.md section 8).
 *
 * The top image is a full dump. Its parents are usually pre-dumps, which hold only
 * inventory, pagemaps and pages, so a parent is read for the top image's live pids only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crimg_int.h"

static int cmp_pid(const void *a, const void *b)
{
	const struct crimg_pid_idx *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int crimg_index_tasks(struct crimg *img, struct crimg_error *err)
{
	size_t i;

	free(img->by_pid);
	img->by_pid = NULL;
	if (!img->nr_tasks)
		return 0;
	img->by_pid = calloc(img->nr_tasks, sizeof(*img->by_pid));
	if (!img->by_pid)
		return crimg_err(err, -ENOMEM, "%s: out of memory", img->dir);
	for (i = 0; i < img->nr_tasks; i++) {
		img->by_pid[i].pid = img->tasks[i].pub.pid;
		img->by_pid[i].idx = i;
	}
	qsort(img->by_pid, img->nr_tasks, sizeof(*img->by_pid), cmp_pid);
	return 0;
}

struct crimg_task_img *crimg_task_by_pid(const struct crimg *img, pid_t pid)
{
	struct crimg_pid_idx key = {.pid = pid}, *hit;

	if (!img->by_pid)
		return NULL;
	hit = bsearch(&key, img->by_pid, img->nr_tasks, sizeof(key), cmp_pid);
	return hit ? &img->tasks[hit->idx] : NULL;
}

static void free_img(struct crimg *img)
{
	size_t i;

	for (i = 0; i < img->nr_tasks; i++) {
		struct crimg_task_img *t = &img->tasks[i];

		free(t->threads);
		free(t->vmas);
		free(t->pmes);
		free(t->pme_off);
		free(t->pagemap_path);
		free(t->pages_path);
		if (t->pages_fd >= 0)
			close(t->pages_fd);
	}
	free(img->tasks);
	free(img->by_pid);
	free(img->dir);
	free(img->realdir);
	free(img->parent_note);
	free(img);
}

void crimg_close(struct crimg *img)
{
	while (img) {
		struct crimg *parent = img->parent;

		free_img(img);
		img = parent;
	}
}

static int new_img(const char *dir, unsigned int depth, struct crimg **out, struct crimg_error *err)
{
	struct crimg *img;
	size_t len = strlen(dir);

	img = calloc(1, sizeof(*img));
	if (!img)
		return crimg_err(err, -ENOMEM, "%s: out of memory", dir);
	img->depth = depth;
	img->is_parent = depth > 0;

	/* "d/" and "d" name the same image; keep file paths free of "//". */
	while (len > 1 && dir[len - 1] == '/')
		len--;
	img->dir = strndup(dir, len);
	if (!img->dir) {
		free_img(img);
		return crimg_err(err, -ENOMEM, "%s: out of memory", dir);
	}
	img->realdir = realpath(img->dir, NULL);
	if (!img->realdir) {
		int ret = -errno;

		crimg_err(err, ret, "%s: cannot open image directory: %s", img->dir, strerror(errno));
		free_img(img);
		return ret;
	}
	*out = img;
	return 0;
}

static int open_top(struct crimg *img, struct crimg_error *err)
{
	size_t i;
	int ret;

	ret = crimg_inventory_check(img->dir, true, err);
	if (ret)
		return ret;
	ret = crimg_pstree_load(img, err);
	if (ret)
		return ret;

	for (i = 0; i < img->nr_tasks; i++) {
		struct crimg_task_img *t = &img->tasks[i];

		ret = crimg_core_load(img->dir, t, err);
		if (ret)
			return ret;
		/* A zombie has no memory images, whatever else lies around. */
		if (t->pub.zombie)
			continue;
		ret = crimg_mm_load(img->dir, t, err);
		if (ret)
			return ret;
		ret = crimg_pagemap_load(img->dir, t, true, err);
		if (ret)
			return ret;
		ret = crimg_pages_open(img->dir, t, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int open_parent(struct crimg *img, const struct crimg *top, struct crimg_error *err)
{
	size_t i;
	int ret;

	ret = crimg_inventory_check(img->dir, false, err);
	if (ret)
		return ret;

	img->tasks = calloc(top->nr_tasks, sizeof(*img->tasks));
	if (!img->tasks)
		return crimg_err(err, -ENOMEM, "%s: out of memory", img->dir);

	for (i = 0; i < top->nr_tasks; i++) {
		const struct crimg_task *tt = &top->tasks[i].pub;
		struct crimg_task_img *t = &img->tasks[img->nr_tasks];

		if (tt->zombie)
			continue;
		memset(t, 0, sizeof(*t));
		t->pages_fd = -1;
		t->pub.pid = tt->pid;
		t->pub.ppid = tt->ppid;
		t->pub.pgid = tt->pgid;
		t->pub.sid = tt->sid;
		ret = crimg_pagemap_load(img->dir, t, false, err);
		if (ret == -ENOENT) {
			/* Not in the parent (e.g. forked since): fine unless a PE_PARENT entry needs it. */
			free(t->pmes);
			free(t->pme_off);
			continue;
		}
		img->nr_tasks++;
		if (ret)
			return ret;
		ret = crimg_pages_open(img->dir, t, err);
		if (ret)
			return ret;
	}
	return crimg_index_tasks(img, err);
}

/* Where IMG's `parent` points, or NULL with img->parent_note saying why there is none. */
static int find_parent(struct crimg *img, char **out, struct crimg_error *err)
{
	char *link = crimg_path(img->dir, "parent"), *target = NULL, *path = NULL;
	struct stat st;
	int ret = 0;

	*out = NULL;
	if (!link)
		return crimg_err(err, -ENOMEM, "%s: out of memory", img->dir);

	if (lstat(link, &st)) {
		if (errno != ENOENT) {
			ret = crimg_err(err, -errno, "%s: cannot stat: %s", link, strerror(errno));
			goto out;
		}
		if (asprintf(&img->parent_note, "there is no %s", link) < 0)
			img->parent_note = NULL;
		goto out;
	}

	if (S_ISLNK(st.st_mode)) {
		char buf[PATH_MAX];
		ssize_t n = readlink(link, buf, sizeof(buf) - 1);

		if (n < 0) {
			ret = crimg_err(err, -errno, "%s: cannot read link: %s", link, strerror(errno));
			goto out;
		}
		buf[n] = '\0';
		target = strdup(buf);
		/* A relative target is relative to the directory holding the link. */
		path = buf[0] == '/' ? strdup(buf) : crimg_path(img->dir, buf);
	} else {
		path = strdup(link);
	}
	if (!path || (S_ISLNK(st.st_mode) && !target)) {
		ret = crimg_err(err, -ENOMEM, "%s: out of memory", link);
		goto out;
	}

	if (stat(path, &st)) {
		/* CRIU ignores a dangling parent link too; PE_PARENT entries then fail with this note. */
		if (errno == ENOENT) {
			if (asprintf(&img->parent_note, "%s -> %s does not exist", link, target ? target : path) < 0)
				img->parent_note = NULL;
			goto out;
		}
		ret = crimg_err(err, -errno, "%s: cannot open parent image %s: %s", link, path, strerror(errno));
		goto out;
	}
	*out = path;
	path = NULL;
out:
	free(path);
	free(target);
	free(link);
	return ret;
}

static int open_chain(struct crimg *top, struct crimg_error *err)
{
	struct crimg *cur = top;
	int ret;

	for (;;) {
		struct crimg *p, *seen;
		char *ppath;

		ret = find_parent(cur, &ppath, err);
		if (ret || !ppath)
			return ret;
		ret = new_img(ppath, cur->depth + 1, &p, err);
		free(ppath);
		if (ret)
			return ret;
		/* Link first so that crimg_close() frees it whatever happens next. */
		cur->parent = p;

		for (seen = top; seen != p; seen = seen->parent) {
			if (!strcmp(seen->realdir, p->realdir))
				return crimg_err(err, -ELOOP, "%s/parent: parent loop: %s is %s, already in the chain",
						 cur->dir, p->dir, p->realdir);
		}
		if (p->depth > CRIMG_MAX_PARENT_DEPTH)
			return crimg_err(err, -ELOOP, "%s/parent: parent chain deeper than %d images", cur->dir,
					 CRIMG_MAX_PARENT_DEPTH);

		ret = open_parent(p, top, err);
		if (ret)
			return ret;
		cur = p;
	}
}

int crimg_open(const char *dir, struct crimg **out, struct crimg_error *err)
{
	struct crimg *img;
	int ret;

	*out = NULL;
	ret = new_img(dir, 0, &img, err);
	if (ret)
		return ret;
	ret = open_top(img, err);
	if (ret)
		goto fail;
	ret = open_chain(img, err);
	if (ret)
		goto fail;
	ret = crimg_check_parent_ranges(img, err);
	if (ret)
		goto fail;
	*out = img;
	return 0;
fail:
	crimg_close(img);
	return ret;
}

const char *crimg_dir(const struct crimg *img)
{
	return img->dir;
}

const struct crimg *crimg_parent(const struct crimg *img)
{
	return img->parent;
}

size_t crimg_nr_tasks(const struct crimg *img)
{
	return img->nr_tasks;
}

const struct crimg_task *crimg_task(const struct crimg *img, size_t i)
{
	return i < img->nr_tasks ? &img->tasks[i].pub : NULL;
}

const struct crimg_task *crimg_find_task(const struct crimg *img, pid_t pid)
{
	struct crimg_task_img *t = crimg_task_by_pid(img, pid);

	return t ? &t->pub : NULL;
}
