/*
 * eventlog_url: `--event-log redis://...` and `sentinel://...` parsed
 * into an eventlog_config (eventlog.h): hosts, password (inline or from a
 * file), stream key and timeouts, each checked with a clear message.
 */
#include "eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eventlog_internal.h"
#include "util.h"

#define DEFAULT_STREAM "shopkeeper:events"
#define DEFAULT_CONNECT_TIMEOUT_MS 500
#define DEFAULT_TIMEOUT_MS 2000
#define STREAM_KEY_MAX 512
#define PASSWORD_MAX 4096

/* ---- URL parsing ------------------------------------------------------------- */

static int url_error(eventlog_config *cfg, strbuf *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int url_error(eventlog_config *cfg, strbuf *err, const char *fmt, ...)
{
	eventlog_config_free(cfg);
	if (err) {
		va_list ap;
		sb_reset(err);
		sb_adds(err, "event log URL: ");
		va_start(ap, fmt);
		sb_vaddf(err, fmt, ap);
		va_end(ap);
	}
	return EVENTLOG_EINVAL;
}

/* Percent-decodes s[0..n) into a new NUL-terminated string (length in
 * *len); NULL on a bad escape or a decoded NUL byte. */
static char *pct_decode(const char *s, size_t n, size_t *len)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int h = i + 2 < n ? util_hexval(s[i + 1]) : -1;
			int l = i + 2 < n ? util_hexval(s[i + 2]) : -1;
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			c = (char)(h << 4 | l);
			i += 2;
		}
		if (c == '\0') {
			free(out);
			return NULL;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* The secret in PATH, trailing newlines dropped: a new string, or NULL
 * with why in *why (static or errno text). */
static char *read_secret(const char *path, const char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	char *buf = xmalloc(PASSWORD_MAX + 2);
	size_t n = 0;
	while (n < PASSWORD_MAX + 1) {
		ssize_t got = read(fd, buf + n, PASSWORD_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*why = strerror(errno);
			close(fd);
			free(buf);
			return NULL;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*why = n > PASSWORD_MAX ? "longer than 4096 bytes"
	       : n == 0		? "empty"
	       : memchr(buf, '\0', n) ? "holds a NUL byte"
				      : NULL;
	if (*why) {
		free(buf);
		return NULL;
	}
	return buf;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* One HOST[:PORT] or [V6][:PORT] of s[0..n) into *h. */
static int parse_host(const char *s, size_t n, int default_port, eventlog_host *h,
		      eventlog_config *cfg, strbuf *err)
{
	size_t hl, i;
	const char *host, *rest;
	if (n == 0)
		return url_error(cfg, err, "empty host");
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return url_error(cfg, err, "'[' without ']' in '%.*s'", (int)n, s);
		host = s + 1;
		hl = (size_t)(close - host);
		rest = close + 1;
		bool colon = false;
		for (i = 0; i < hl; i++) {
			char c = host[i];
			colon |= c == ':';
			if (!(util_hexval(c) >= 0 || c == ':' || c == '.'))
				return url_error(cfg, err, "'%.*s' is not an IPv6 address", (int)hl,
						 host);
		}
		if (hl == 0 || !colon)
			return url_error(cfg, err, "'%.*s' is not an IPv6 address", (int)hl, host);
	} else {
		host = s;
		for (hl = 0; hl < n && s[hl] != ':'; hl++)
			if (!host_char(s[hl]))
				return url_error(cfg, err, "bad character '%c' in host '%.*s'", s[hl],
						 (int)n, s);
		if (hl == 0)
			return url_error(cfg, err, "empty host in '%.*s'", (int)n, s);
		rest = s + hl;
	}
	if (hl > EVENTLOG_HOST_MAX)
		return url_error(cfg, err, "host longer than %d bytes", EVENTLOG_HOST_MAX);
	memcpy(h->host, host, hl);
	h->host[hl] = '\0';
	size_t rl = n - (size_t)(rest - s);
	h->port = default_port;
	if (rl == 0)
		return 0;
	if (rest[0] != ':')
		return url_error(cfg, err, "expected ':PORT' after '%.*s'", (int)(rest - s), s);
	uint64_t port;
	if (eventlog_parse_u64(rest + 1, rl - 1, &port) != 0 || port == 0 || port > 65535)
		return url_error(cfg, err, "bad port '%.*s' (1 to 65535)", (int)(rl - 1), rest + 1);
	h->port = (int)port;
	return 0;
}

static int parse_timeout(const char *v, size_t n, int *out)
{
	uint64_t t;
	if (eventlog_parse_u64(v, n, &t) != 0 || t == 0 || t > 600000)
		return -1;
	*out = (int)t;
	return 0;
}

/* The query string s[0..n): stream, password_file, sentinel_password_file,
 * connect_timeout_ms, timeout_ms. */
static int parse_query(const char *s, size_t n, eventlog_config *cfg, strbuf *err)
{
	bool seen[5] = { false };
	static const char *const names[5] = { "stream", "password_file", "sentinel_password_file",
					      "connect_timeout_ms", "timeout_ms" };
	const char *end = s + n;
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(pe - s));
		if (!eq)
			return url_error(cfg, err, "parameter '%.*s' without '=VALUE'", (int)(pe - s),
					 s);
		size_t kl = (size_t)(eq - s), vl = (size_t)(pe - eq - 1);
		int k;
		for (k = 0; k < 5; k++)
			if (strlen(names[k]) == kl && memcmp(names[k], s, kl) == 0)
				break;
		if (k == 5)
			return url_error(cfg, err,
					 "unknown parameter '%.*s' (stream, password_file, "
					 "sentinel_password_file, connect_timeout_ms, timeout_ms)",
					 (int)kl, s);
		if (seen[k])
			return url_error(cfg, err, "parameter '%s' given twice", names[k]);
		seen[k] = true;
		size_t dl;
		char *value = pct_decode(eq + 1, vl, &dl);
		if (!value)
			return url_error(cfg, err, "bad percent-encoding in parameter '%s'", names[k]);
		if (dl == 0) {
			free(value);
			return url_error(cfg, err, "parameter '%s' is empty", names[k]);
		}
		int bad = 0;
		const char *why = NULL;
		switch (k) {
		case 0:
			if (dl > STREAM_KEY_MAX) {
				free(value);
				return url_error(cfg, err, "stream key longer than %d bytes",
						 STREAM_KEY_MAX);
			}
			free(cfg->stream);
			cfg->stream = value;
			cfg->stream_len = dl;
			value = NULL;
			break;
		case 1:
		case 2: {
			char *secret = read_secret(value, &why);
			if (!secret) {
				url_error(cfg, err, "%s %s: %s", names[k], value, why);
				free(value);
				return EVENTLOG_EINVAL;
			}
			char **dst = k == 1 ? &cfg->password : &cfg->sentinel_password;
			if (*dst) { /* only the URL's password can be there */
				free(secret);
				free(value);
				return url_error(cfg, err,
						 "a password in the URL and password_file both");
			}
			*dst = secret;
			break;
		}
		case 3:
			bad = parse_timeout(value, dl, &cfg->connect_timeout_ms);
			break;
		default:
			bad = parse_timeout(value, dl, &cfg->timeout_ms);
			break;
		}
		free(value);
		if (bad)
			return url_error(cfg, err, "%s must be 1 to 600000 (milliseconds)", names[k]);
		s = amp ? amp + 1 : end;
		if (amp && s == end)
			return url_error(cfg, err, "trailing '&'");
	}
	return 0;
}

int eventlog_config_parse(const char *url, eventlog_config *cfg, strbuf *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!url)
		return url_error(cfg, err, "missing");
	const char *p;
	if (strncmp(url, "redis://", 8) == 0) {
		p = url + 8;
	} else if (strncmp(url, "sentinel://", 11) == 0) {
		p = url + 11;
		cfg->sentinel = true;
	} else {
		const char *colon = strstr(url, "://");
		if (colon)
			return url_error(cfg, err, "unknown scheme '%.*s' (redis:// or sentinel://)",
					 (int)(colon - url), url);
		return url_error(cfg, err, "'%s' is not redis://HOST:PORT or "
				 "sentinel://HOST:PORT,.../MASTER", url);
	}
	size_t len = strlen(p);
	const char *q = memchr(p, '?', len);
	const char *end = q ? q : p + len;
	const char *slash = memchr(p, '/', (size_t)(end - p));
	const char *auth_end = slash ? slash : end;

	/* [:PASSWORD@]: the last '@' before the path, so an unencoded '@' in
	 * the password still works. */
	const char *at = NULL;
	for (const char *c = p; c < auth_end; c++)
		if (*c == '@')
			at = c;
	if (at) {
		if (p[0] != ':')
			return url_error(cfg, err, "user names are not supported: write "
				         "redis://:PASSWORD@HOST:PORT");
		size_t pl;
		cfg->password = pct_decode(p + 1, (size_t)(at - p - 1), &pl);
		if (!cfg->password)
			return url_error(cfg, err, "bad percent-encoding in the password");
		if (pl == 0)
			return url_error(cfg, err, "empty password before '@'");
		p = at + 1;
	}

	/* HOST:PORT[,HOST:PORT...] */
	int default_port = cfg->sentinel ? 26379 : 6379;
	const char *h = p;
	while (1) {
		const char *comma = memchr(h, ',', (size_t)(auth_end - h));
		const char *he = comma ? comma : auth_end;
		if (cfg->nhosts == EVENTLOG_MAX_HOSTS)
			return url_error(cfg, err, "more than %d hosts", EVENTLOG_MAX_HOSTS);
		if (parse_host(h, (size_t)(he - h), default_port, &cfg->hosts[cfg->nhosts], cfg, err))
			return EVENTLOG_EINVAL;
		cfg->nhosts++;
		if (!comma)
			break;
		h = comma + 1;
	}
	if (!cfg->sentinel && cfg->nhosts > 1)
		return url_error(cfg, err, "redis:// takes one HOST:PORT; several are "
				 "sentinel://HOST:PORT,.../MASTER");

	/* /MASTERNAME */
	if (cfg->sentinel) {
		if (!slash || slash + 1 == end)
			return url_error(cfg, err, "sentinel:// needs the master's name: "
				         "sentinel://HOST:PORT,.../MASTER");
		size_t ml = (size_t)(end - slash - 1);
		for (size_t i = 0; i < ml; i++)
			if (!host_char(slash[1 + i]))
				return url_error(cfg, err, "bad character '%c' in master name",
						 slash[1 + i]);
		if (ml > EVENTLOG_HOST_MAX)
			return url_error(cfg, err, "master name too long");
		cfg->master = xstrndup(slash + 1, ml);
	} else if (slash && slash + 1 != end) {
		return url_error(cfg, err, "unexpected path '%.*s' (database numbers are not "
				 "supported; the stream is ?stream=KEY)", (int)(end - slash), slash);
	}

	if (q && parse_query(q + 1, strlen(q + 1), cfg, err))
		return EVENTLOG_EINVAL;
	if (!cfg->stream) {
		cfg->stream = xstrdup(DEFAULT_STREAM);
		cfg->stream_len = strlen(DEFAULT_STREAM);
	}
	return 0;
}

void eventlog_config_free(eventlog_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->password)
		explicit_bzero(cfg->password, strlen(cfg->password));
	if (cfg->sentinel_password)
		explicit_bzero(cfg->sentinel_password, strlen(cfg->sentinel_password));
	free(cfg->password);
	free(cfg->sentinel_password);
	free(cfg->master);
	free(cfg->stream);
	memset(cfg, 0, sizeof(*cfg));
}
