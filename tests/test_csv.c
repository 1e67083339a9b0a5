/*
 * test_csv: the streaming RFC 4180 reader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "harness.h"

/* Reads every record of `text`; the result strings are "a|b|c" per record
 * or "ERR<code>@line" for bad ones, joined by '\n'. */
static char *read_all(const char *text, size_t len, const csv_limits *lim)
{
	static char out[8192];
	FILE *f = fmemopen((void *)text, len, "rb");
	csv_reader *r = csv_open(f, lim);
	csv_record rec;
	int rc;
	size_t o = 0;
	out[0] = '\0';
	while ((rc = csv_read(r, &rec)) != CSV_EOF && rc != CSV_ERR_IO) {
		if (rc != CSV_OK) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "ERR%d@%llu\n", rc,
					      (unsigned long long)rec.line);
			continue;
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%llu:", (unsigned long long)rec.line);
		for (size_t i = 0; i < rec.nfields; i++)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? "|" : "", rec.fields[i]);
		o += (size_t)snprintf(out + o, sizeof(out) - o, "\n");
	}
	csv_close(r);
	fclose(f);
	return out;
}

#define READ(s) read_all(s, sizeof(s) - 1, NULL)

TEST(simple_records)
{
	CHECK_STR(READ("a,b,c\n1,2,3\n"), "1:a|b|c\n2:1|2|3\n");
}

TEST(quoted_fields)
{
	/* commas, doubled quotes and a newline inside quotes */
	CHECK_STR(READ("id,desc\n1,\"RECORD FRAME 7\"\" SINGLE SIZE \"\n2,\"a, b\"\n3,\"two\nlines\"\n4,x\n"),
		  "1:id|desc\n2:1|RECORD FRAME 7\" SINGLE SIZE \n3:2|a, b\n4:3|two\nlines\n6:4|x\n");
}

TEST(line_endings)
{
	CHECK_STR(READ("a,b\r\n1,2\r\n"), "1:a|b\n2:1|2\n");
	CHECK_STR(READ("a,b\r1,2\r"), "1:a|b\n2:1|2\n");
	CHECK_STR(READ("a,b\n1,2"), "1:a|b\n2:1|2\n"); /* no final newline */
}

TEST(empty_fields_and_blank_lines)
{
	CHECK_STR(READ("a,,c\n,\n\n\nx,\"\"\n"), "1:a||c\n2:|\n5:x|\n");
}

TEST(bom_is_skipped)
{
	CHECK_STR(READ("\xef\xbb\xbf" "customer_id,item_id\n1,2\n"), "1:customer_id|item_id\n2:1|2\n");
}

TEST(over_long_record_is_skipped_and_reading_goes_on)
{
	csv_limits lim = { 16, 0 };
	const char text[] = "a,b\n0123456789,0123456789\n\"quoted,long,0123456789\n0123456789\",x\nok,1\n";
	CHECK_STR(read_all(text, sizeof(text) - 1, &lim),
		  "1:a|b\nERR-2@2\nERR-2@3\n5:ok|1\n");
}

TEST(too_many_fields)
{
	csv_limits lim = { 0, 3 };
	const char text[] = "a,b,c,d\nx,y\n";
	CHECK_STR(read_all(text, sizeof(text) - 1, &lim), "ERR-5@1\n2:x|y\n");
}

TEST(bad_quoting)
{
	/* text after a closing quote, then recovery; a stray quote inside an
	 * unquoted field is kept */
	CHECK_STR(READ("\"ab\"c,d\nx,y\"z\n"), "ERR-3@1\n2:x|y\"z\n");
	/* unterminated quote runs to the end of the file */
	CHECK_STR(READ("a\n\"open,x\ny\n"), "1:a\nERR-3@2\n");
}

TEST(invalid_utf8)
{
	CHECK_STR(READ("a,\xff\nb,\xc0\xaf\nc,\xed\xa0\x80\nd,\xc3\xa9\n"),
		  "ERR-4@1\nERR-4@2\nERR-4@3\n4:d|\xc3\xa9\n");
	const char nul[] = "a,b\0c\nd,e\n";
	CHECK_STR(read_all(nul, sizeof(nul) - 1, NULL), "ERR-4@1\n2:d|e\n");
}

TEST(record_across_buffer_boundary)
{
	/* The reader buffers 64 KiB: put a quoted record across that edge. */
	size_t n = 70000;
	char *text = malloc(n + 64);
	memset(text, 'x', 65530);
	text[65530] = '\n';
	size_t o = 65531;
	o += (size_t)sprintf(text + o, "\"split, across\",\"edge\"\"q\"\nlast,1\n");
	csv_limits lim = { 100000, 0 };
	FILE *f = fmemopen(text, o, "rb");
	csv_reader *r = csv_open(f, &lim);
	csv_record rec;
	CHECK_INT(csv_read(r, &rec), CSV_OK);
	CHECK_INT(rec.lens[0], 65530);
	CHECK_INT(csv_read(r, &rec), CSV_OK);
	CHECK_STR(rec.fields[0], "split, across");
	CHECK_STR(rec.fields[1], "edge\"q");
	CHECK_INT(csv_read(r, &rec), CSV_OK);
	CHECK_STR(rec.fields[0], "last");
	CHECK_INT(rec.line, 3);
	CHECK_INT(csv_read(r, &rec), CSV_EOF);
	CHECK(csv_bytes_read(r) == o);
	csv_close(r);
	fclose(f);
	free(text);
}

TEST(empty_input)
{
	CHECK_STR(read_all("", 0, NULL), "");
	CHECK_STR(READ("\n\n"), "");
}

/* What the writer quotes, the reader gives back unchanged. */
TEST(written_fields_read_back)
{
	static const char *const fields[] = { "plain", "a, b", "RECORD FRAME 7\" SINGLE", "two\nlines",
					      "cr\rhere", " padded ", "", "\"", "tab\t" };
	strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (i)
			sb_addc(&sb, ',');
		csv_add_field(&sb, fields[i], strlen(fields[i]));
	}
	sb_addc(&sb, '\n');
	CHECK_STR(sb.buf, "plain,\"a, b\",\"RECORD FRAME 7\"\" SINGLE\",\"two\nlines\",\"cr\rhere\","
			  "\" padded \",,\"\"\"\",\"tab\t\"\n");
	FILE *f = fmemopen(sb.buf, sb.len, "rb");
	csv_reader *r = csv_open(f, NULL);
	csv_record rec;
	CHECK_INT(csv_read(r, &rec), CSV_OK);
	CHECK_INT(rec.nfields, sizeof(fields) / sizeof(fields[0]));
	for (size_t i = 0; i < rec.nfields && i < sizeof(fields) / sizeof(fields[0]); i++)
		CHECK_STR(rec.fields[i], fields[i]);
	CHECK_INT(csv_read(r, &rec), CSV_EOF);
	csv_close(r);
	fclose(f);
	sb_release(&sb);
}

int main(void)
{
	RUN(simple_records);
	RUN(quoted_fields);
	RUN(line_endings);
	RUN(empty_fields_and_blank_lines);
	RUN(bom_is_skipped);
	RUN(over_long_record_is_skipped_and_reading_goes_on);
	RUN(too_many_fields);
	RUN(bad_quoting);
	RUN(invalid_utf8);
	RUN(record_across_buffer_boundary);
	RUN(empty_input);
	RUN(written_fields_read_back);
	return harness_done();
}
