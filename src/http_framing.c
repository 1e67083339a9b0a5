/*
 * http_framing: refusing requests a proxy could split differently. See
 * http_framing.h.
 */
#include "http_framing.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct framing {
	unsigned content_length, transfer_encoding;
	bool cl_bad, te_not_chunked, name_bad;
};

/* RFC 9110 token characters: what a header name is made of. */
static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
				      size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	struct framing *f = cls;
	static const char cl[] = "content-length", te[] = "transfer-encoding";
	for (size_t i = 0; i < key_size; i++)
		if (!is_tchar((unsigned char)key[i]))
			f->name_bad = true; /* "Content-Length :" is no Content-Length to us */
	if (key_size == sizeof(cl) - 1 && strncasecmp(key, cl, key_size) == 0) {
		f->content_length++;
		bool digits = value && value_size > 0 && value_size <= 19;
		for (size_t i = 0; digits && i < value_size; i++)
			digits = value[i] >= '0' && value[i] <= '9';
		f->cl_bad |= !digits;
	} else if (key_size == sizeof(te) - 1 && strncasecmp(key, te, key_size) == 0) {
		f->transfer_encoding++;
		f->te_not_chunked |= !value || value_size != 7 || strncasecmp(value, "chunked", 7) != 0;
	} else if ((key_size > sizeof(cl) - 1 && strncasecmp(key, cl, sizeof(cl) - 1) == 0) ||
		   (key_size > sizeof(te) - 1 && strncasecmp(key, te, sizeof(te) - 1) == 0)) {
		/* The library glues a folded line onto the name
		 * ("Transfer-Encoding:\r\n chunked" comes as
		 * "Transfer-Encodingchunked"): a proxy may have read a coding. */
		f->name_bad = true;
	}
	return MHD_YES;
}

const char *http_framing_error(struct MHD_Connection *conn, const char *url, const char *version,
			       size_t uri_len, size_t conn_memory)
{
	/* libmicrohttpd 0.9.75 splits the request line in place: the URI
	 * ends with the NUL written over the space before the version, so
	 * the URI had version - url - 1 bytes. strlen saw fewer: a NUL
	 * inside it, where the path (or a query value) was cut. Checked only
	 * where that layout holds (both in the connection's buffer). */
	if (uri_len != SIZE_MAX && version[0] && version > url &&
	    (size_t)(version - url) <= conn_memory && (size_t)(version - url) - 1 != uri_len)
		return "a NUL byte in the request line";
	struct framing f = { 0 };
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, framing_header, &f);
	if (f.name_bad)
		return "a header name with a byte no header name has (a space before ':', "
		       "a folded line)";
	if (f.content_length > 1)
		return "more than one Content-Length header";
	if (f.cl_bad)
		return "a Content-Length that is not a number";
	if (f.transfer_encoding > 1)
		return "more than one Transfer-Encoding header";
	if (f.transfer_encoding && f.content_length)
		return "both Content-Length and Transfer-Encoding";
	if (f.te_not_chunked)
		return "a Transfer-Encoding other than chunked";
	if (f.transfer_encoding && strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
		return "Transfer-Encoding in a request older than HTTP/1.1";
	return NULL;
}
