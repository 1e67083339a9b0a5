/*
 * fuzz_eventlog: what a hostile or buggy writer (or server) can put in
 * front of a replica's applier. The first byte picks the parser:
 *   'U'  the rest is an event log URL (eventlog_config_parse)
 *   'R'  an XRANGE reply in RESP, 'X' an XREAD reply (eventlog_batch_from_resp)
 *   else the rest is one stream entry's value (eventlog_decode)
 * Properties: no crash; a decoded record is one eventlog_encode accepts and
 * writes back byte for byte (the encoding is canonical, the version byte
 * included: an item record is version 2, an expire record 3, a served
 * record 4, a catalog record 5, the older kinds version 1); a parsed URL has
 * hosts, ports and a stream.
 */
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "fuzz.h"
#include "strbuf.h"

static void check_record(const eventlog_record *r, const uint8_t *bytes, size_t n)
{
	strbuf sb = STRBUF_INIT;
	/* an item or catalog record names an item and no customer; the others
	 * a customer */
	if (r->kind == EVENTLOG_ITEM	   ? (r->customer_len || !r->item_len ||
					      !(r->item_set | r->item_clear) ||
					      (r->item_set & r->item_clear))
	    : r->kind == EVENTLOG_CATALOG ? (r->customer_len || !r->item_len ||
					      !r->catalog_fields)
					    : !r->customer_len)
		abort();
	if (eventlog_encode(r, &sb) != 0)
		abort();
	if (bytes && (sb.len != n || memcmp(sb.buf, bytes, n) != 0))
		abort();
	if (sb.len > EVENTLOG_RECORD_MAX)
		abort();
	sb_release(&sb);
}

static void fuzz_url(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	if (!url)
		return;
	memcpy(url, data, size);
	url[size] = '\0';
	/* password files would make the harness read whatever path it finds
	 * (a FIFO blocks): the URL grammar is what is fuzzed here. */
	if (!strstr(url, "_file")) {
		eventlog_config cfg;
		strbuf err = STRBUF_INIT;
		if (eventlog_config_parse(url, &cfg, &err) == 0) {
			if (cfg.nhosts == 0 || cfg.nhosts > EVENTLOG_MAX_HOSTS || !cfg.stream ||
			    cfg.stream_len == 0 || (cfg.sentinel && !cfg.master) ||
			    (!cfg.sentinel && cfg.nhosts != 1))
				abort();
			for (uint32_t i = 0; i < cfg.nhosts; i++)
				if (!cfg.hosts[i].host[0] || cfg.hosts[i].port < 1 ||
				    cfg.hosts[i].port > 65535)
					abort();
		} else if (strncmp(sb_str(&err), "event log URL: ", 15) != 0 ||
			   cfg.stream || cfg.password) {
			abort();
		}
		eventlog_config_free(&cfg);
		sb_release(&err);
	}
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	if (data[0] == 'U') {
		fuzz_url(rest, n);
	} else if (data[0] == 'R' || data[0] == 'X') {
		eventlog_batch b = { 0 };
		if (eventlog_batch_from_resp(rest, n, data[0] == 'X', &b) == 0) {
			for (size_t i = 0; i < b.n; i++) {
				if (i > 0 && eventlog_id_cmp(b.entries[i - 1].id, b.entries[i].id) >= 0)
					abort();
				if (b.entries[i].status == 0)
					check_record(&b.entries[i].rec, NULL, 0);
				else if (b.entries[i].rec.customer)
					abort();
			}
		} else if (b.n != 0) {
			abort();
		}
		eventlog_batch_release(&b);
	} else {
		eventlog_record r;
		int rc = eventlog_decode(rest, n, &r);
		if (rc == 0)
			check_record(&r, rest, n);
		else if (rc != EVENTLOG_EDECODE && rc != EVENTLOG_EVERSION)
			abort();
		else if (r.kind || r.customer || r.item)
			abort();
	}
	return 0;
}
