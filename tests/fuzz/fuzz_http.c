/*
 * fuzz_http: whole requests through the real daemon, router, query-string
 * parsing and handlers. The first call trains a small model (catalog,
 * customers, quoted titles) and starts the server in this process on a
 * loopback port with API keys on; every input then becomes one request on
 * its own connection, and the answer must be a well-formed HTTP response,
 * never a 500, with valid JSON wherever it says JSON. A hang is a finding
 * too (no answer within READ_TIMEOUT_MS).
 *
 * Input: byte 0 picks the method (bits 0-2; 7 sends the rest of the input
 * verbatim as the request), bit 3 adds the right API key, bit 4 a wrong
 * one, bit 5 sends the body chunked, bit 6 asks for HTTP/1.0, bit 7 says
 * byte 1 is a framing byte (below). Then the request target up to the
 * first '\n' (bytes the request line cannot hold are percent-encoded, so
 * the router sees them), then the body.
 *
 * The framing byte (issue 21, bug 5) makes the request one a proxy could
 * split differently: bit 0 a second, equal Content-Length; bit 1 a second,
 * different one; bit 2 Transfer-Encoding beside Content-Length; bit 3 a
 * second coding (not chunked); bit 4 a space before the colon; bit 5 a
 * Transfer-Encoding folded onto a second line; bit 6 a raw NUL in the
 * request target. Any of these must get exactly one answer, a 400, and a
 * JSON one refusing the framing, with "Connection: close", when it is ours
 * (not the library's own page). Bit 7 repeats
 * headers that do not frame (Authorization, Host, Content-Type): no rule
 * beyond the usual ones.
 */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "cli.h"
#include "events.h"
#include "fuzz.h"
#include "http.h"
#include "model.h"
#include "state.h"
#include "strbuf.h"

#define FUZZ_KEY "fuzz-key-0123456789abcdef"
#define READ_TIMEOUT_MS 10000
#define RAW_SILENCE_MS 50 /* a raw request may leave the server waiting */
#define MAX_BODY 65536

static const char interactions[] =
	"customer_id,item_id,event,timestamp,quantity,price\n"
	"alice,apple,purchase,2024-03-01,1,1.5\n"
	"alice,bread,purchase,2024-03-02,2,2.0\n"
	"bob,apple,purchase,2024-02-01,1,1.5\n"
	"bob,bread,purchase,2024-02-01,1,2.0\n"
	"bob,cheese,purchase,2024-03-05,1,7.25\n"
	"carol,apple,view,2024-03-06,1,0\n"
	"carol,cheese,cart,2024-03-07,1,0\n"
	"carol,dates,purchase,2024-01-07,3,4.0\n"
	"dave,bread,purchase,2023-06-01,3,2.0\n"
	"dave,bread,purchase,2023-06-02,-1,2.0\n"
	"dave,dates,purchase,2023-06-03,1,4.0\n"
	"erin,\"Mug, \"\"Big\"\"\",purchase,2024-03-09,1,9.0\n"
	"erin,tea/green,purchase,2024-03-09,1,3.0\n"
	"frank,eggs,purchase,2022-01-01,12,0.25\n"
	"frank,flour,purchase,2022-01-02,1,1.0\n"
	"17850,bread,purchase,2024-03-10,1,2.0\n"
	"17850,tea/green,purchase,2024-03-10,1,3.0\n"
	"17850,caf\xc3\xa9,purchase,2024-03-10,1,3.0\n";
static const char catalog[] =
	"item_id,title,category,price\n"
	"apple,Apple,fruit,1.5\n"
	"bread,Bread,bakery,2.0\n"
	"cheese,\"Cheese, \"\"aged\"\"\",dairy,7.25\n"
	"dates,Dates,fruit,4.0\n"
	"eggs,Eggs,dairy,0.25\n"
	"flour,Flour,bakery,1.0\n"
	"tea/green,Green tea,drinks,3.0\n"
	"caf\xc3\xa9,Caf\xc3\xa9 \xe2\x98\x95,drinks,3.0\n";
static const char customers[] =
	"customer_id,country,birth_date,newsletter\n"
	"alice,France,1980-01-02,yes\n"
	"bob,\"Korea, Republic of\",1975-05-05,no\n"
	"17850,United Kingdom,,yes\n";

static char dir[128];
static unsigned port;

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

/* Trains the model and starts the server; the server lives as long as the
 * process (its objects stay reachable from these statics). */
static void start_server(void)
{
	static http_server *srv;
	static api *a;
	static auth *keys;
	strbuf err = STRBUF_INIT;
	const char *scratch = fuzz_scratch_dir("http");
	if (strlen(scratch) >= sizeof(dir))
		abort();
	memcpy(dir, scratch, strlen(scratch) + 1);
	write_file("interactions.csv", interactions);
	write_file("catalog.csv", catalog);
	write_file("customers.csv", customers);
	char in[256], cat[256], cus[256], out[256], state_dir[256];
	snprintf(in, sizeof(in), "%s/interactions.csv", dir);
	snprintf(cat, sizeof(cat), "%s/catalog.csv", dir);
	snprintf(cus, sizeof(cus), "%s/customers.csv", dir);
	snprintf(out, sizeof(out), "%s/model", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	char *argv[] = { "train", "--interactions", in, "--catalog", cat, "--customers", cus,
			 "--out", out, "--algo", "cosine", "--threads", "1", "--quiet", NULL };
	if (cmd_train((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) != 0)
		abort();

	model *m = NULL;
	state *s = NULL;
	events_writer *ew = NULL;
	if (model_open(out, &m, &err) != 0 || state_open(state_dir, 1 << 20, &s, &err) != 0 ||
	    events_writer_start(s, &ew, &err) != 0 ||
	    auth_load(NULL, FUZZ_KEY ",another-key-0123456789", &keys, &err) != 0) {
		fprintf(stderr, "fuzz_http: %s\n", err.buf);
		abort();
	}
	a = api_create(m, s, ew, out);
	api_set_auth(a, keys, false);
	signal(SIGPIPE, SIG_IGN);
	http_config cfg = { .listen = "127.0.0.1:0", .threads = 2, .timeout_s = 5,
			    .max_body = MAX_BODY, .max_connections = 64, .handler = api_handle,
			    .app = a, .thread_free = api_thread_free };
	if (http_start(&cfg, &srv, &err) != 0) {
		fprintf(stderr, "fuzz_http: %s\n", err.buf);
		abort();
	}
	api_set_connections(a, http_connections, srv);
	port = http_port(srv);
	sb_release(&err);
}

/* The request line can hold no control bytes, spaces or '#'. */
static void add_target(strbuf *sb, const uint8_t *p, size_t n)
{
	if (n == 0 || p[0] != '/')
		sb_addc(sb, '/');
	for (size_t i = 0; i < n; i++) {
		if (p[i] <= 0x20 || p[i] == 0x7f || p[i] == '#')
			sb_addf(sb, "%%%02X", p[i]);
		else
			sb_addc(sb, (char)p[i]);
	}
}

static void add_chunk(strbuf *sb, const uint8_t *p, size_t n)
{
	if (n == 0)
		return; /* a zero-size chunk would end the body */
	sb_addf(sb, "%zx\r\n", n);
	sb_add(sb, p, n);
	sb_adds(sb, "\r\n");
}

/* Framing byte bits (see the top). */
#define FR_CL_SAME 0x01
#define FR_CL_OTHER 0x02
#define FR_TE_AND_CL 0x04
#define FR_TE_OTHER 0x08
#define FR_SPACE 0x10
#define FR_FOLD 0x20
#define FR_NUL 0x40
#define FR_REPEAT 0x80
#define FR_REFUSED 0x7f /* any of these: 400 */

/* Builds the request; *framing is the framing byte (0 without one). */
static void build_request(const uint8_t *data, size_t size, strbuf *req, int *method,
			  uint8_t *framing)
{
	static const char *methods[] = { "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "GET" };
	uint8_t flags = data[0];
	*method = flags & 7;
	*framing = 0;
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	if (*method == 7) {
		sb_add(req, rest, n);
		return;
	}
	if (flags & 0x80 && n > 0) {
		*framing = rest[0];
		rest++;
		n--;
	}
	uint8_t fr = *framing;
	const uint8_t *nl = memchr(rest, '\n', n);
	size_t tlen = nl ? (size_t)(nl - rest) : n;
	const uint8_t *body = nl ? nl + 1 : rest + n;
	size_t blen = nl ? n - tlen - 1 : 0;
	sb_adds(req, methods[*method]);
	sb_addc(req, ' ');
	size_t target = req->len;
	add_target(req, rest, tlen);
	if (fr & FR_NUL) { /* a raw NUL in the middle of the target */
		size_t at = target + (req->len - target + 1) / 2;
		sb_addc(req, '\0');
		memmove(req->buf + at + 1, req->buf + at, req->len - 1 - at);
		req->buf[at] = '\0';
	}
	sb_adds(req, flags & 0x40 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	sb_adds(req, "Host: 127.0.0.1\r\nConnection: close\r\n");
	if (fr & FR_REPEAT)
		sb_adds(req, "Host: example.com\r\nAuthorization: Bearer not-the-key-0123456789\r\n");
	if (flags & 0x08)
		sb_adds(req, "Authorization: Bearer " FUZZ_KEY "\r\n");
	if (flags & 0x10)
		sb_adds(req, "Authorization: Bearer not-the-key-0123456789\r\n");
	if (blen == 0 && !(flags & 0x20) && !(fr & (FR_REFUSED & ~FR_NUL))) {
		sb_adds(req, "\r\n");
		return;
	}
	sb_adds(req, "Content-Type: application/json\r\n");
	if (fr & FR_REPEAT)
		sb_adds(req, "Content-Type: text/plain\r\n");
	if (flags & 0x20 && !(flags & 0x40)) {
		sb_adds(req, fr & FR_FOLD    ? "Transfer-Encoding:\r\n chunked\r\n"
			     : fr & FR_SPACE ? "Transfer-Encoding : chunked\r\n"
					     : "Transfer-Encoding: chunked\r\n");
		if (fr & FR_TE_OTHER)
			sb_adds(req, "Transfer-Encoding: identity\r\n");
		if (fr & (FR_CL_SAME | FR_CL_OTHER | FR_TE_AND_CL))
			sb_addf(req, "Content-Length: %zu\r\n", blen);
		sb_adds(req, "\r\n");
		/* two chunks, to cross a chunk boundary inside the JSON */
		size_t half = blen / 2;
		add_chunk(req, body, half);
		add_chunk(req, body + half, blen - half);
		sb_adds(req, "0\r\n\r\n");
	} else {
		sb_addf(req, "Content-Length%s: %zu\r\n", fr & FR_SPACE ? " " : "", blen);
		if (fr & FR_CL_SAME)
			sb_addf(req, "Content-Length: %zu\r\n", blen);
		if (fr & FR_CL_OTHER) /* the rest of the body as a request of its own */
			sb_addf(req, "Content-Length: %zu\r\n", blen / 2);
		if (fr & FR_TE_AND_CL)
			sb_adds(req, "Transfer-Encoding: chunked\r\n");
		if (fr & FR_TE_OTHER)
			sb_adds(req, "Transfer-Encoding: xchunked\r\n");
		if (fr & FR_FOLD)
			sb_adds(req, "Transfer-Encoding:\r\n identity\r\n");
		sb_adds(req, "\r\n");
		sb_add(req, body, blen);
	}
}

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends req on a new connection and reads until the server closes it (or,
 * for a raw request, falls silent). */
static void exchange(const strbuf *req, bool raw, strbuf *resp)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		abort(); /* the server is gone */
	size_t off = 0;
	long long deadline = ms_now() + READ_TIMEOUT_MS;
	bool sent_all = req->len == 0;
	long long last = ms_now();
	if (sent_all && raw)
		shutdown(fd, SHUT_WR);
	char buf[16384];
	for (;;) {
		struct pollfd p = { fd, POLLIN | (sent_all ? 0 : POLLOUT), 0 };
		long long now = ms_now(), left = deadline - now;
		if (left <= 0) {
			fprintf(stderr, "fuzz_http: no answer within %d ms\n", READ_TIMEOUT_MS);
			abort();
		}
		if (raw && sent_all) {
			if (now - last >= RAW_SILENCE_MS)
				break;
			left = last + RAW_SILENCE_MS - now;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (p.revents & POLLOUT && !sent_all) {
			ssize_t w = send(fd, req->buf + off, req->len - off, MSG_DONTWAIT);
			if (w < 0 && errno != EAGAIN)
				sent_all = true; /* the server closed: read what it said */
			else if (w > 0 && (off += (size_t)w) == req->len)
				sent_all = true;
			if (sent_all && raw) /* an incomplete request is closed at once */
				shutdown(fd, SHUT_WR);
			last = ms_now();
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);
			if (r <= 0)
				break;
			sb_add(resp, buf, (size_t)r);
			last = ms_now();
		}
	}
	close(fd);
}

static const char *find_header(const char *head, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = head; p && p < head + len;) {
		const char *eol = memmem(p, (size_t)(head + len - p), "\r\n", 2);
		if (!eol)
			return NULL;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':')
			return p + n + 1;
		p = eol + 2;
	}
	return NULL;
}

/* Checks one response at r; returns its length (pipelined answers follow). */
static size_t check_one(const char *r, size_t len, int method)
{
	if (len < 12 || (memcmp(r, "HTTP/1.1 ", 9) != 0 && memcmp(r, "HTTP/1.0 ", 9) != 0)) {
		fprintf(stderr, "fuzz_http: not an HTTP response\n%.*s\n", (int)len, r);
		abort();
	}
	int status = atoi(r + 9);
	if (status < 100 || status > 599 || status == 500) {
		fprintf(stderr, "fuzz_http: status %d\n%.*s\n", status, (int)len, r);
		abort();
	}
	const char *end = memmem(r, len, "\r\n\r\n", 4);
	if (!end && method == 7)
		return len; /* raw: cut off at the silence */
	if (!end) {
		fprintf(stderr, "fuzz_http: a response head without its end\n");
		abort();
	}
	size_t head_len = (size_t)(end - r) + 2;
	const char *body = end + 4;
	size_t body_len = len - (size_t)(body - r);
	const char *cl = find_header(r, head_len, "Content-Length");
	if (method == 4)
		body_len = 0; /* HEAD: the length of the GET, no body */
	else if (cl && strtoull(cl, NULL, 10) <= body_len)
		body_len = strtoull(cl, NULL, 10);
	else if (cl && method == 7)
		return len; /* raw: cut off, or the answer to a HEAD */
	else if (cl) {
		fprintf(stderr, "fuzz_http: a %d answer shorter than its Content-Length\n", status);
		abort();
	}
	/* Raw input: the answer to a HEAD has its GET's Content-Length and no
	 * body, so what follows may be the next answer (no JSON body starts
	 * so). */
	if (method == 7 && len - (size_t)(body - r) >= 7 && memcmp(body, "HTTP/1.", 7) == 0)
		return (size_t)(body - r);
	const char *ct = find_header(r, head_len, "Content-Type");
	if (!ct || method == 4 || strncmp(ct, " application/json", 17) != 0)
		return (size_t)(body - r) + body_len;
	json_error_t jerr;
	json_t *j = json_loadb(body, body_len, 0, &jerr);
	if (!j) {
		fprintf(stderr, "fuzz_http: invalid JSON in a %d answer: %s\n%.*s\n", status,
			jerr.text, (int)body_len, body);
		abort();
	}
	if (status >= 400) {
		json_t *e = json_object_get(j, "error");
		if (!json_is_string(json_object_get(e, "code")) ||
		    !json_is_string(json_object_get(e, "message"))) {
			fprintf(stderr, "fuzz_http: a %d answer without error.code/message\n", status);
			abort();
		}
	}
	json_decref(j);
	return (size_t)(body - r) + body_len;
}

/* Every answer on the connection (several when the input pipelines). A
 * request framed so that a proxy could split it otherwise gets one answer,
 * a 400, with "Connection: close" when it is our JSON one (the library's
 * own 400 page closes the connection as well). */
static void check_response(const strbuf *resp, int method, uint8_t framing)
{
	size_t off = 0, answers = 0;
	/* libmicrohttpd 0.9.75 answers a Content-Length that is not a number
	 * with its own 400 whose head is sent twice (the second copy is read
	 * as the body): the library's bug, before any code of ours runs
	 * (SECURITY.md "Request framing"). Only its status line is checked. */
	const char *end = resp->len ? memmem(resp->buf, resp->len, "\r\n\r\n", 4) : NULL;
	size_t head = end ? (size_t)(end - resp->buf) + 2 : 0;
	const char *ct = head ? find_header(resp->buf, head, "Content-Type") : NULL;
	bool ours = ct && strncmp(ct, " application/json", 17) == 0;
	/* Our JSON answer (a 404 echoing the path) may hold that text too. */
	if (resp->len && !ours &&
	    memmem(resp->buf, resp->len, "wrong value for <b>Content-Length</b>", 37)) {
		if (resp->len < 13 || memcmp(resp->buf, "HTTP/1.1 400 ", 13) != 0) {
			fprintf(stderr, "fuzz_http: not the library's 400\n%.*s\n", (int)resp->len,
				resp->buf);
			abort();
		}
		return;
	}
	while (off < resp->len) {
		off += check_one(resp->buf + off, resp->len - off, method);
		answers++;
	}
	if (!(framing & FR_REFUSED))
		return;
	if (answers != 1) {
		fprintf(stderr, "fuzz_http: framing 0x%02x: %zu answers, expected one 400\n%.*s\n",
			framing, answers, (int)resp->len, resp->len ? resp->buf : "");
		abort();
	}
	const char *conn = head ? find_header(resp->buf, head, "Connection") : NULL;
	if (answers != 1 || atoi(resp->buf + 9) != 400 ||
	    (ours && (!conn || strncasecmp(conn, " close", 6) != 0 ||
		      (method != 4 && /* HEAD: no body to say why */
		       !memmem(resp->buf, resp->len, "request framing refused", 23))))) {
		fprintf(stderr, "fuzz_http: framing 0x%02x: %zu answers, expected one 400 with "
				"Connection: close\n%.*s\n", framing, answers, (int)resp->len, resp->buf);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!port)
		start_server();
	if (size == 0 || size > 2 * MAX_BODY)
		return 0;
	strbuf req = STRBUF_INIT, resp = STRBUF_INIT;
	int method;
	uint8_t framing;
	build_request(data, size, &req, &method, &framing);
	exchange(&req, method == 7, &resp);
	check_response(&resp, method, framing);
	sb_release(&req);
	sb_release(&resp);
	return 0;
}
