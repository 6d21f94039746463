// SPDX-License-Identifier: MIT
/*
 * Runs a fuzz target over the files named on the command line, without libFuzzer: how
 * `make check` replays the seed corpora and every input that once crashed (fuzz/regress)
 * with the ordinary compiler, under ASan+UBSan in `make asan`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f) {
		perror(path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		goto err;
	buf = malloc(len ? len : 1);
	if (!buf || (len && fread(buf, 1, len, f) != (size_t)len))
		goto err;
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
err:
	perror(path);
	free(buf);
	fclose(f);
	return 1;
}

int main(int argc, char **argv)
{
	int i, bad = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++)
		bad |= replay(argv[i]);
	printf("%d inputs replayed\n", argc - 1);
	return bad;
}
