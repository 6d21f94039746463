// SPDX-License-Identifier: MIT
/* A zombie (only core-<pid>.img, task_state 2) is listed with no memory; its live parent is read as usual. */
#include <stdio.h>

#include "crimg.h"
#include "tu.h"

int main(void)
{
	const char *dir = tu_scenario("zombie");
	const struct crimg_task *t, *z;
	struct crimg_error err;
	struct crimg_loc loc;
	struct crimg *img;
	int ret;

	if (!dir)
		return tu_done();
	ret = crimg_open(dir, &img, &err);
	CHECK(ret == 0, "crimg_open: %d %s", ret, err.msg);
	if (ret)
		return tu_done();

	CHECK_EQ(crimg_nr_tasks(img), 2);
	t = crimg_task(img, 0);
	z = crimg_task(img, 1);
	CHECK(t && z);
	if (t && z) {
		CHECK_EQ(t->pid, 1);
		CHECK(!t->zombie);
		CHECK_EQ(t->nr_vmas, 1);
		CHECK_EQ(t->nr_pmes, 1);
		CHECK_EQ(z->pid, 2);
		CHECK_EQ(z->ppid, 1);
		CHECK(z->zombie);
		CHECK_EQ(z->nr_vmas, 0);
		CHECK_EQ(z->nr_pmes, 0);
		/* the garbage thread id is kept as read, never used */
		CHECK_EQ(z->nr_threads, 1);
		CHECK(crimg_find_task(img, 2) == z);
		ret = crimg_locate(img, z, 0x10000, &loc, &err);
		CHECK(ret == 0 && loc.where == CRIMG_NOT_IN_IMAGE, "%d where %d", ret, loc.where);
	}
	crimg_close(img);
	return tu_done();
}
