// SPDX-License-Identifier: MIT
/* inventory.img, pstree.img and the task state in core-<pid>.img. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crimg_int.h"
#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "pstree.pb-c.h"

int crimg_inventory_check(const char *dir, bool required, struct crimg_error *err)
{
	InventoryEntry *ie = NULL;
	struct crimg_file f;
	int ret;

	ret = crimg_file_open(&f, dir, "inventory.img", INVENTORY_MAGIC, CRIMG_FILE_BARE_MAGIC, err);
	if (ret == -ENOENT && !required)
		return 0;
	if (ret)
		return ret;

	ret = crimg_file_next_msg(&f, &inventory_entry__descriptor, (ProtobufCMessage **)&ie, err);
	if (ret)
		goto out;
	if (!ie->has_img_version) {
		ret = crimg_file_err(&f, f.rec_off, err, -EINVAL, "inventory_entry has no img_version");
		goto out;
	}
	/* The only two versions CRIU itself accepts. */
	if (ie->img_version != 1 && ie->img_version != 2) {
		ret = crimg_file_err(&f, f.rec_off, err, -EINVAL, "unsupported img_version %u", ie->img_version);
		goto out;
	}
	ret = crimg_file_expect_end(&f, err);
out:
	if (ie)
		inventory_entry__free_unpacked(ie, NULL);
	crimg_file_close(&f);
	return ret;
}

static int add_task(struct crimg *img, size_t *cap, const PstreeEntry *pe, struct crimg_file *f,
		    struct crimg_error *err)
{
	struct crimg_task_img *t;
	size_t i;

	if (!pe->has_pid || !pe->has_ppid)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "pstree_entry has no %s",
				      pe->has_pid ? "ppid" : "pid");
	if (pe->pid == 0 || pe->pid > INT_MAX || pe->ppid > INT_MAX)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "bad pid %u (ppid %u)", pe->pid, pe->ppid);
	if (img->nr_tasks >= CRIMG_MAX_TASKS)
		return crimg_file_err(f, f->rec_off, err, -EINVAL, "more than %d tasks", CRIMG_MAX_TASKS);

	if (img->nr_tasks == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct crimg_task_img *n = realloc(img->tasks, ncap * sizeof(*n));

		if (!n)
			return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
		img->tasks = n;
		*cap = ncap;
	}
	t = &img->tasks[img->nr_tasks];
	memset(t, 0, sizeof(*t));
	t->pages_fd = -1;
	/* Counted before anything can fail, so crimg_close() frees this task too. */
	img->nr_tasks++;

	t->pstree_off = f->rec_off;
	t->pub.pid = pe->pid;
	t->pub.ppid = pe->ppid;
	t->pub.pgid = pe->has_pgid ? (pid_t)pe->pgid : 0;
	t->pub.sid = pe->has_sid ? (pid_t)pe->sid : 0;
	if (pe->n_threads) {
		t->threads = calloc(pe->n_threads, sizeof(*t->threads));
		if (!t->threads)
			return crimg_err(err, -ENOMEM, "%s: out of memory", f->path);
		/* Zombies carry garbage here (images.md section 3): copied, never trusted. */
		for (i = 0; i < pe->n_threads; i++)
			t->threads[i] = (pid_t)pe->threads[i];
	}
	t->pub.nr_threads = pe->n_threads;
	t->pub.threads = t->threads;
	return 0;
}

int crimg_pstree_load(struct crimg *img, struct crimg_error *err)
{
	struct crimg_file f;
	const uint8_t *data;
	size_t len, cap = 0, i;
	int ret;

	ret = crimg_file_open(&f, img->dir, "pstree.img", PSTREE_MAGIC, 0, err);
	if (ret)
		return ret;

	while ((ret = crimg_file_next(&f, &data, &len, err)) > 0) {
		PstreeEntry *pe = pstree_entry__unpack(NULL, len, data);

		if (!pe) {
			ret = crimg_file_err(&f, f.rec_off, err, -EINVAL, "cannot decode pstree_entry (%zu bytes)",
					     len);
			goto out;
		}
		ret = add_task(img, &cap, pe, &f, err);
		pstree_entry__free_unpacked(pe, NULL);
		if (ret)
			goto out;
	}
	if (ret < 0)
		goto out;
	if (!img->nr_tasks) {
		ret = crimg_file_err(&f, f.pos, err, -EINVAL, "no pstree_entry records");
		goto out;
	}
	ret = crimg_index_tasks(img, err);
	if (ret)
		goto out;
	for (i = 1; i < img->nr_tasks; i++) {
		const struct crimg_pid_idx *a = &img->by_pid[i - 1], *b = &img->by_pid[i];

		if (a->pid == b->pid) {
			size_t later = a->idx > b->idx ? a->idx : b->idx;

			ret = crimg_file_err(&f, img->tasks[later].pstree_off, err, -EINVAL, "duplicate pid %d",
					     (int)a->pid);
			goto out;
		}
	}
out:
	crimg_file_close(&f);
	return ret;
}

int crimg_core_load(const char *dir, struct crimg_task_img *t, struct crimg_error *err)
{
	CoreEntry *ce = NULL;
	struct crimg_file f;
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "core-%d.img", (int)t->pub.pid);
	ret = crimg_file_open(&f, dir, name, CORE_MAGIC, 0, err);
	if (ret)
		return ret;

	ret = crimg_file_next_msg(&f, &core_entry__descriptor, (ProtobufCMessage **)&ce, err);
	if (ret)
		goto out;
	/* Only the thread-group leader's core has tc, and this is the leader's. */
	if (!ce->tc || !ce->tc->has_task_state) {
		ret = crimg_file_err(&f, f.rec_off, err, -EINVAL, "core_entry has no tc.task_state");
		goto out;
	}
	t->pub.zombie = ce->tc->task_state == TASK_STATE_DEAD;
	ret = crimg_file_expect_end(&f, err);
out:
	if (ce)
		core_entry__free_unpacked(ce, NULL);
	crimg_file_close(&f);
	return ret;
}
