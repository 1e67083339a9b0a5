/*
 * fuzz_decode: the small parsers requests reach: percent-decoding of path
 * segments and queries, id normalisation, timestamps, UTF-8 validation.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ids.h"
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
	free(out);
	return 0;
}
