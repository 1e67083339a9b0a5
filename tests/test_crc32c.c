/*
 * test_crc32c: CRC-32C against published check values, and the hardware
 * path against the portable one at every alignment and length.
 */
#include <stdint.h>
#include <string.h>

#include "crc32c.h"
#include "harness.h"

TEST(check_values)
{
	static const struct {
		const char *data;
		size_t len;
		uint32_t crc;
	} cases[] = {
		{ "", 0, 0 },
		{ "123456789", 9, 0xE3069283u }, /* the catalogue's check value */
		{ "a", 1, 0xC1D04330u },
		{ "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32,
		  0x8A9136AAu }, /* RFC 3720 B.4: 32 bytes of zeros */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(crc32c(0, cases[i].data, cases[i].len), cases[i].crc);
		CHECK_INT(crc32c_portable(0, cases[i].data, cases[i].len), cases[i].crc);
	}
}

TEST(paths_agree)
{
	static unsigned char buf[4096 + 64];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len < 200; len += 7)
			CHECK_INT(crc32c(0, buf + off, len), crc32c_portable(0, buf + off, len));
	/* in parts, continuing from the previous result */
	uint32_t whole = crc32c(0, buf, 4096), parts = 0;
	for (size_t at = 0; at < 4096; at += 1000)
		parts = crc32c(parts, buf + at, 4096 - at < 1000 ? 4096 - at : 1000);
	CHECK_INT(parts, whole);
	CHECK_INT(crc32c_portable(crc32c_portable(0, buf, 1001), buf + 1001, 3095), whole);
}

int main(void)
{
	RUN(check_values);
	RUN(paths_agree);
	return harness_done();
}
