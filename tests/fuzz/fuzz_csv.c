/*
 * fuzz_csv: the CSV reader over arbitrary bytes, with small limits so the
 * over-long and too-many-fields paths are reached, and every record's
 * fields checked for the reader's promises.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fuzz.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
	if (!f)
		return 0;
	if (size == 0)
		fgetc(f); /* fmemopen wants a non-empty buffer: consume it */
	csv_limits lim = { 256, 8 };
	csv_reader *r = csv_open(f, &lim);
	csv_record rec;
	int rc;
	unsigned guard = 0;
	while ((rc = csv_read(r, &rec)) != CSV_EOF && rc != CSV_ERR_IO && guard++ < 100000) {
		if (rc != CSV_OK)
			continue;
		if (rec.nfields == 0 || rec.nfields > 8)
			abort();
		for (size_t i = 0; i < rec.nfields; i++)
			if (strlen(rec.fields[i]) != rec.lens[i] || !utf8_valid(rec.fields[i], rec.lens[i]))
				abort();
	}
	csv_close(r);
	fclose(f);
	return 0;
}
