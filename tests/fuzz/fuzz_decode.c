/*
 * fuzz_decode: the small parsers requests reach: percent-decoding of path
 * segments and queries, id normalisation, timestamps, UTF-8 validation,
 * and rec_ids (events carry them back): one that decodes encodes to the
 * same text.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ids.h"
#include "recid.h"
#include "timefmt.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *out = malloc(size + 1);
	if (!out)
		return 0;
	for (int plus = 0; plus < 2; plus++) {
		long n = http_percent_decode(s, size, out, plus);
		if (n > (long)size || (n >= 0 && out[n] != '\0'))
			abort();
	}
	const char *id = s;
	size_t len = size;
	if (id_normalize(&id, &len)) {
		if (len == 0 || len > ID_MAX_LEN || id < s || id + len > s + size)
			abort();
	}
	int64_t t;
	if (time_parse(s, size, &t) == 0) {
		char buf[TIME_FMT_LEN];
		time_format(t, buf); /* must not overflow, whatever t is */
	}
	(void)utf8_valid(s, size);
	recid r;
	if (recid_decode(s, size, &r) == RECID_OK) {
		char text[RECID_LEN + 1];
		if (recid_encode(&r, text) != RECID_OK || size != RECID_LEN ||
		    memcmp(text, s, RECID_LEN) != 0)
			abort();
	}
	free(out);
	return 0;
}
