/*
 * ids: normalisation of external ids (see ids.h).
 */
#include "ids.h"

bool id_normalize(const char **start, size_t *len)
{
	const char *s = *start;
	size_t n = *len;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;

	/* "17850.0" -> "17850": digits, a dot, then zeros only. */
	size_t dot = 0;
	while (dot < n && s[dot] >= '0' && s[dot] <= '9')
		dot++;
	if (dot > 0 && dot + 1 < n && s[dot] == '.') {
		size_t k = dot + 1;
		while (k < n && s[k] == '0')
			k++;
		if (k == n)
			n = dot;
	}

	if (n == 0 || n > ID_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	*start = s;
	*len = n;
	return true;
}
