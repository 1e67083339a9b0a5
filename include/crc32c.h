/*
 * crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of model files (model_writer.c writes it, model.c checks it).
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once, at
 * run time), else a table-driven slicing-by-8 loop; both give the same
 * result.
 */
#ifndef SHOPKEEPER_CRC32C_H
#define SHOPKEEPER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of data[0..len) continuing from `crc` (0 to start; the
 * previous result to go on with the next part). crc32c(0, "123456789", 9)
 * is 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable loop alone, whatever the CPU (for tests). */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif
