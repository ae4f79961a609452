/* recipients: the Valid_Recipients file (see recipients.h).
 *
 * Addresses are kept as lower-cased "local@domain" strings in one sorted
 * array (bsearch: a million entries cost ~20 comparisons a lookup, no
 * rehashing at load); whole domains ("@domain") in a second, small one. */
#include "conf/recipients.h"

#include "conf/conf_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest local part and domain we take, as the SMTP parser does (quoted
 * local parts are kept with their quotes). */
#define RCPT_LOCAL_MAX 259
#define RCPT_DOMAIN_MAX 255
/* Bad lines reported one by one; the rest are counted. */
#define RCPT_MAX_ERRORS 20
/* Longest line read: an address is at most 259 + 1 + 255 bytes. */
#define RCPT_LINE_MAX 1024
#define RCPT_STR_(x) #x
#define RCPT_STR(x) RCPT_STR_(x)

struct mx_recipients {
	char **addrs;   /* "local@domain", lower case, sorted, unique */
	size_t naddrs;
	char **domains; /* "domain" of the "@domain" entries, lower case, sorted */
	size_t ndomains;
};

static void lower_ascii(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool push(char ***arr, size_t *n, size_t *cap, char *s)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		char **na = realloc(*arr, nc * sizeof *na);
		if (na == NULL)
			return false;
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = s;
	return true;
}

/* Sort and drop repeats (a file may list an address twice). */
static size_t sort_unique(char **a, size_t n)
{
	if (n == 0)
		return 0;
	qsort(a, n, sizeof *a, cmp_str);
	size_t o = 1;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(a[i], a[o - 1]) == 0)
			free(a[i]);
		else
			a[o++] = a[i];
	}
	return o;
}

/* Strip blanks at both ends, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
	                 s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* Why `local` cannot be a local part, or NULL. Unquoted it must be a
 * dot-string (RFC 5321 §4.1.2: atoms of atext, UTF-8 allowed, joined by
 * single dots), as the SMTP side takes it; quoted, anything but control
 * bytes. */
static const char *bad_local(const char *local)
{
	size_t n = strlen(local);
	if (n > RCPT_LOCAL_MAX)
		return "local part too long";
	bool quoted = n >= 2 && local[0] == '"' && local[n - 1] == '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)local[i];
		if (c < 0x20 || c == 0x7f)
			return "control character in the local part";
		if (quoted)
			continue;
		if (c == '.') {
			if (i == 0 || i + 1 == n || local[i + 1] == '.')
				return "dots must separate words in an unquoted local part";
			continue;
		}
		bool atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c >= 0x80 ||
		             strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
		if (!atext)
			return "character not allowed in an unquoted local part";
	}
	return NULL;
}

/* One entry: 0 when added, 1 when not valid (the reason in *why), -1 when
 * out of memory. */
static int add_entry(struct mx_recipients *r, char *entry, size_t *acap, size_t *dcap,
                      mx_recipients_domain_fn accepts, void *arg, const char **why)
{
	char *at = strrchr(entry, '@');
	if (at == NULL) {
		*why = "is not \"local@domain\" or \"@domain\"";
		return 1;
	}
	*at = '\0';
	const char *local = entry, *domain = at + 1;
	size_t dl = strlen(domain);
	char dom[RCPT_DOMAIN_MAX + 1];
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl == 0 || dl > RCPT_DOMAIN_MAX) {
		*why = dl == 0 ? "has no domain" : "domain too long";
		return 1;
	}
	memcpy(dom, domain, dl);
	dom[dl] = '\0';
	lower_ascii(dom);
	if (!accepts(dom, arg)) {
		*why = "names a domain that is not in Relay_Domains";
		return 1;
	}
	if (*local == '\0') {
		char *d = strdup(dom);
		if (d == NULL || !push(&r->domains, &r->ndomains, dcap, d)) {
			free(d);
			return -1;
		}
		return 0;
	}
	if ((*why = bad_local(local)) != NULL)
		return 1;
	size_t ll = strlen(local);
	char *a = malloc(ll + dl + 2);
	if (a == NULL || !push(&r->addrs, &r->naddrs, acap, a)) {
		free(a);
		return -1;
	}
	memcpy(a, local, ll);
	a[ll] = '@';
	memcpy(a + ll + 1, dom, dl + 1);
	lower_ascii(a);
	return 0;
}

/* One line into buf, without its newline: its length, or -1 at the end of
 * the file. *bad says why the line cannot be an entry (a NUL byte, longer
 * than buf), else NULL; the rest of a long line is skipped. */
static long read_line(FILE *f, char *buf, size_t cap, const char **bad)
{
	size_t n = 0;
	bool any = false;
	int ch;
	*bad = NULL;
	while ((ch = getc(f)) != EOF) {
		any = true;
		if (ch == '\n')
			break;
		if (ch == '\0')
			*bad = "NUL byte in the line";
		else if (n + 1 < cap)
			buf[n++] = (char)ch;
		else
			*bad = "line longer than " RCPT_STR(RCPT_LINE_MAX) " bytes";
	}
	if (!any)
		return -1;
	buf[n] = '\0';
	return (long)n;
}

struct mx_recipients *mx_recipients_load(const char *path, const char *conf, unsigned line,
                                         mx_recipients_domain_fn accepts, void *arg,
                                         struct conf_errors *errs)
{
	/* O_NONBLOCK: a FIFO named by mistake must not hang the load */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f = NULL;
	if (fd < 0 || fstat(fd, &st) != 0) {
		conf_error(errs, conf, line, "Valid_Recipients \"%s\": %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		conf_error(errs, conf, line, "Valid_Recipients \"%s\": not a regular file", path);
	} else if ((f = fdopen(fd, "r")) == NULL) {
		conf_error(errs, conf, line, "Valid_Recipients \"%s\": %s", path, strerror(errno));
	}
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct mx_recipients *r = calloc(1, sizeof *r);
	size_t acap = 0, dcap = 0, nbad = 0;
	char buf[RCPT_LINE_MAX + 1];
	unsigned lineno = 0;
	bool oom = r == NULL;
	const char *bad;
	while (!oom && read_line(f, buf, sizeof buf, &bad) >= 0) {
		lineno++;
		if (bad != NULL) {
			if (nbad++ < RCPT_MAX_ERRORS)
				conf_error(errs, path, lineno, "%s", bad);
			continue;
		}
		char *e = trim(buf);
		if (*e == '\0' || *e == '#')
			continue;
		char shown[80];
		snprintf(shown, sizeof shown, "%.*s", (int)sizeof shown - 1, e);
		const char *why = NULL;
		if (strpbrk(e, " \t") != NULL && e[0] != '"')
			why = "has blanks inside (one address per line)";
		else if (add_entry(r, e, &acap, &dcap, accepts, arg, &why) < 0)
			oom = true;
		if (why != NULL && nbad++ < RCPT_MAX_ERRORS)
			conf_error(errs, path, lineno, "\"%s\" %s", shown, why);
	}
	if (!oom && ferror(f)) {
		conf_error(errs, conf, line, "Valid_Recipients \"%s\": %s", path, strerror(errno));
		nbad++;
	}
	fclose(f);
	if (oom && r != NULL) {
		conf_error(errs, conf, line, "Valid_Recipients \"%s\": out of memory", path);
		nbad++;
	}
	if (nbad > RCPT_MAX_ERRORS)
		conf_error(errs, path, 0, "%zu more bad lines", nbad - RCPT_MAX_ERRORS);
	if (r == NULL || nbad > 0) {
		mx_recipients_free(r);
		return NULL;
	}
	r->naddrs = sort_unique(r->addrs, r->naddrs);
	r->ndomains = sort_unique(r->domains, r->ndomains);
	return r;
}

bool mx_recipients_has(const struct mx_recipients *r, const char *local, const char *domain)
{
	char key[RCPT_LOCAL_MAX + RCPT_DOMAIN_MAX + 2];
	size_t dl = strlen(domain);
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl > RCPT_DOMAIN_MAX)
		return false;
	memcpy(key, domain, dl);
	key[dl] = '\0';
	lower_ascii(key);
	const char *k = key;
	if (r->ndomains && bsearch(&k, r->domains, r->ndomains, sizeof *r->domains, cmp_str))
		return true;
	size_t ll = strlen(local);
	if (ll > RCPT_LOCAL_MAX || r->naddrs == 0)
		return false;
	memmove(key + ll + 1, key, dl + 1);
	memcpy(key, local, ll);
	key[ll] = '@';
	lower_ascii(key);
	return bsearch(&k, r->addrs, r->naddrs, sizeof *r->addrs, cmp_str) != NULL;
}

size_t mx_recipients_count(const struct mx_recipients *r)
{
	return r ? r->naddrs + r->ndomains : 0;
}

void mx_recipients_free(struct mx_recipients *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->naddrs; i++)
		free(r->addrs[i]);
	for (size_t i = 0; i < r->ndomains; i++)
		free(r->domains[i]);
	free(r->addrs);
	free(r->domains);
	free(r);
}
