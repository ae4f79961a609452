/* recipients: the Valid_Recipients file (see recipients.h).
 *
 * Addresses are kept as lower-cased "local@domain" keys in one sorted array
 * (bsearch: a million entries cost ~20 comparisons a lookup, no rehashing
 * at load); whole domains ("@domain") in a second, small one. An alias
 * entry carries its targets as one "a@d,b@d" string. */
#include "conf/recipients.h"

#include "conf/conf_parse.h"
#include "util/localpart.h"

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
/* Targets of one alias, at most. */
#define RCPT_MAX_TARGETS 32
/* Bad lines reported one by one; the rest are counted. */
#define RCPT_MAX_ERRORS 20
/* Longest line read: an address is at most 259 + 1 + 255 bytes. */
#define RCPT_LINE_MAX 1024
#define RCPT_STR_(x) #x
#define RCPT_STR(x) RCPT_STR_(x)

struct entry {
	char *key;      /* "local@domain" or "domain", lower case */
	char *targets;  /* "a@d,b@d" for an alias, NULL for a mailbox */
};

struct mx_recipients {
	struct entry *addrs;   /* "local@domain" entries, sorted by key, unique */
	size_t naddrs;
	struct entry *domains; /* "@domain" entries (key "domain"), sorted */
	size_t ndomains;
};

static void lower_ascii(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

static bool push(struct entry **arr, size_t *n, size_t *cap, char *key, char *targets)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct entry *na = realloc(*arr, nc * sizeof *na);
		if (na == NULL)
			return false;
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = (struct entry){key, targets};
	return true;
}

static void entry_free(struct entry *e)
{
	free(e->key);
	free(e->targets);
}

/* Sort and find repeats. An address listed twice the same way is kept
 * once; listed twice differently (a mailbox and an alias, or two target
 * lists) is ambiguous: its key in *dup, and false. */
static bool sort_unique(struct entry *a, size_t *np, const char **dup)
{
	size_t n = *np;
	if (n == 0)
		return true;
	qsort(a, n, sizeof *a, cmp_entry);
	size_t o = 1;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(a[i].key, a[o - 1].key) != 0) {
			a[o++] = a[i];
			continue;
		}
		bool same = (a[i].targets == NULL && a[o - 1].targets == NULL) ||
		            (a[i].targets && a[o - 1].targets &&
		             strcmp(a[i].targets, a[o - 1].targets) == 0);
		if (!same && *dup == NULL)
			*dup = a[o - 1].key;
		entry_free(&a[i]);
	}
	*np = o;
	return *dup == NULL;
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
 * single dots), as the SMTP side takes it; quoted, a Quoted-string as the
 * SMTP side takes it: no control bytes, '"' and '\\' inside escaped with
 * '\\', which escapes a printable byte. */
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
		if (quoted) {
			if (i == 0 || i + 1 == n)
				continue;
			if (c == '"')
				return "a '\"' inside a quoted local part must be written '\\\"'";
			if (c == '\\') {
				unsigned char e = (unsigned char)local[i + 1];
				if (i + 2 == n || e < 0x20 || e > 0x7e)
					return "a '\\' in a quoted local part must escape a printable "
					       "character";
				i++;
			}
			continue;
		}
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

static const char E_NOT_OURS[] = "names a domain that is not in Relay_Domains";
static const char E_NOMEM[] = "out of memory";

/* Split "local@domain" (or "@domain" when may_be_domain) in place: a
 * lower-cased domain in dom, *local pointing into text ("" for "@domain").
 * NULL when it is an address of ours, else why not. */
static const char *parse_address(char *text, bool may_be_domain, char dom[RCPT_DOMAIN_MAX + 1],
                                 const char **local, mx_recipients_domain_fn accepts, void *arg)
{
	char *at = strrchr(text, '@');
	if (at == NULL)
		return may_be_domain ? "is not \"local@domain\" or \"@domain\""
		                     : "is not \"local@domain\"";
	*at = '\0';
	const char *domain = at + 1;
	size_t dl = strlen(domain);
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl == 0)
		return "has no domain";
	if (dl > RCPT_DOMAIN_MAX)
		return "domain too long";
	memcpy(dom, domain, dl);
	dom[dl] = '\0';
	lower_ascii(dom);
	if (!accepts(dom, arg))
		return E_NOT_OURS;
	*local = text;
	if (*text == '\0')
		return may_be_domain ? NULL : "has no local part";
	return bad_local(text);
}

/* "a@d, b@d" -> "a@d,b@d", every one an address of ours, lower case. */
static const char *parse_targets(char *list, mx_recipients_domain_fn accepts, void *arg,
                                 char **out)
{
	/* room for any canonical form (it is never longer than as written
	 * for a valid local part, but this does not rely on it) */
	size_t cap = 2 * strlen(list) + 3, n = 0, count = 0;
	char *res = malloc(cap);
	if (res == NULL)
		return E_NOMEM;
	for (char *item = list, *next; item != NULL; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		item = trim(item);
		if (*item == '\0' || strpbrk(item, " \t") != NULL) {
			free(res);
			return "has a target that is not one address (targets: a@d, b@d)";
		}
		if (++count > RCPT_MAX_TARGETS) {
			free(res);
			return "has more than " RCPT_STR(RCPT_MAX_TARGETS) " targets";
		}
		char dom[RCPT_DOMAIN_MAX + 1];
		const char *local = "";
		const char *why = parse_address(item, false, dom, &local, accepts, arg);
		if (why != NULL) {
			free(res);
			if (why == E_NOT_OURS)
				return "has a target whose domain is not in Relay_Domains";
			/* parse_address sets local just before judging it */
			return *local != '\0' ? "has a target with a bad local part"
			                       : "has a target that is not local@domain";
		}
		char canon[2 * RCPT_LOCAL_MAX + 3];
		if (!mx_local_canonical(local, canon, sizeof canon)) {
			free(res);
			return "has a target with a bad local part";
		}
		int w = snprintf(res + n, cap - n, "%s%s@%s", n ? "," : "", canon, dom);
		if (w < 0 || (size_t)w >= cap - n) {
			free(res);
			return "has a target with a bad local part";
		}
		n += (size_t)w;
	}
	lower_ascii(res);
	*out = res;
	return NULL;
}

/* One line's entry: "address" or "@domain", then optionally blanks and the
 * alias targets. 0 when added, 1 when not valid (the reason in *why), -1
 * when out of memory. */
static int add_entry(struct mx_recipients *r, char *entry, size_t *acap, size_t *dcap,
                     const struct mx_recipients_opts *o, const char **why)
{
	/* the first token ends at the first blank outside a quoted local part */
	char *p = entry;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (*p == '\\' && p[1])
				p++;
		if (*p == '"')
			p++;
	}
	p += strcspn(p, " \t");
	char *rest = NULL;
	if (*p) {
		*p = '\0';
		rest = trim(p + 1);
	}
	char dom[RCPT_DOMAIN_MAX + 1];
	const char *local;
	if ((*why = parse_address(entry, true, dom, &local, o->accepts, o->arg)) != NULL)
		return 1;
	char *targets = NULL;
	if (rest && *rest) {
		if (!o->aliases) {
			*why = "has alias targets, which need Delivery = \"maildir\" (the next hop "
			       "resolves its own aliases)";
			return 1;
		}
		if ((*why = parse_targets(rest, o->accepts, o->arg, &targets)) != NULL)
			return *why == E_NOMEM ? -1 : 1;
	}
	char *key;
	bool ok;
	if (*local == '\0') {
		key = strdup(dom);
		ok = key && push(&r->domains, &r->ndomains, dcap, key, targets);
	} else {
		/* as the SMTP side compares it: "bob" is bob, "john\ doe" is
		 * "john doe" */
		char canon[2 * RCPT_LOCAL_MAX + 3];
		if (!mx_local_canonical(local, canon, sizeof canon)) {
			free(targets);
			*why = "local part too long";
			return 1;
		}
		size_t ll = strlen(canon), dl = strlen(dom);
		key = malloc(ll + dl + 2);
		if (key) {
			memcpy(key, canon, ll);
			key[ll] = '@';
			memcpy(key + ll + 1, dom, dl + 1);
			lower_ascii(key);
		}
		ok = key && push(&r->addrs, &r->naddrs, acap, key, targets);
	}
	if (!ok) {
		free(key);
		free(targets);
		return -1;
	}
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
                                         const struct mx_recipients_opts *o,
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
		if (add_entry(r, e, &acap, &dcap, o, &why) < 0)
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
	const char *dup = NULL;
	if (r != NULL && nbad == 0 &&
	    (!sort_unique(r->addrs, &r->naddrs, &dup) || !sort_unique(r->domains, &r->ndomains, &dup)))
		conf_error(errs, path, 0, "\"%s%s\" is listed twice, differently", 
		           strchr(dup, '@') ? "" : "@", dup);
	if (r == NULL || nbad > 0 || dup != NULL) {
		mx_recipients_free(r);
		return NULL;
	}
	return r;
}

bool mx_recipients_lookup(const struct mx_recipients *r, const char *local, const char *domain,
                          const char **targets)
{
	const struct entry *e = NULL;
	char key[RCPT_LOCAL_MAX + RCPT_DOMAIN_MAX + 2];
	size_t dl = strlen(domain);
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl > RCPT_DOMAIN_MAX)
		return false;
	memcpy(key, domain, dl);
	key[dl] = '\0';
	lower_ascii(key);
	struct entry k = {key, NULL};
	size_t ll = strlen(local);
	/* the address itself first, then its domain's "@domain" */
	if (ll <= RCPT_LOCAL_MAX && r->naddrs) {
		char dom[RCPT_DOMAIN_MAX + 1];
		memcpy(dom, key, dl + 1);
		memcpy(key, local, ll);
		key[ll] = '@';
		memcpy(key + ll + 1, dom, dl + 1);
		lower_ascii(key);
		e = bsearch(&k, r->addrs, r->naddrs, sizeof *r->addrs, cmp_entry);
		memmove(key, key + ll + 1, dl + 1);
	}
	if (e == NULL && r->ndomains)
		e = bsearch(&k, r->domains, r->ndomains, sizeof *r->domains, cmp_entry);
	if (e != NULL && targets != NULL)
		*targets = e->targets;
	return e != NULL;
}

bool mx_recipients_has(const struct mx_recipients *r, const char *local, const char *domain)
{
	return mx_recipients_lookup(r, local, domain, NULL);
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
		entry_free(&r->addrs[i]);
	for (size_t i = 0; i < r->ndomains; i++)
		entry_free(&r->domains[i]);
	free(r->addrs);
	free(r->domains);
	free(r);
}
