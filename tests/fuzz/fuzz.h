/*
 * fuzz: the entry point every harness in tests/fuzz defines. Built with
 * clang's libFuzzer (make fuzz) or with driver.c, which replays files
 * (make test runs each harness over its seed corpus that way, with gcc).
 */
#ifndef SHOPKEEPER_FUZZ_H
#define SHOPKEEPER_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
