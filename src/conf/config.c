/*
 * config: walks the conf_parse tree into a checked struct mx_config.
 *
 * Every option is described by data (struct opt_def: name, type, field
 * offset, bounds) so one function checks them all; the scopes that hold
 * them are walked by hand because each has its own children. Every error is
 * collected as "FILE:LINE: message"; a config with any error is never
 * returned, so a reload that fails keeps the old one.
 *
 * Limits fall back Momentum-style: a Listen uses its own value, else its
 * ESMTP_Listener's, else the global one, else the default. Relative paths
 * (Maildir, TLS_*, Control_Listener, sieve sources) resolve against the
 * directory of the config file, made absolute at load time so a later
 * chdir() cannot change their meaning.
 */
#include "conf/config.h"
#include "conf/conf_parse.h"
#include "conf/recipients.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

_Static_assert(sizeof(enum mx_delivery) == sizeof(int), "enum fields are written as int");

struct ctx {
	const char *file;        /* as the caller named it, for messages */
	char *dir;               /* absolute folder of the file, for relative paths */
	struct conf_errors *errs;
	struct mx_config *cfg;
	unsigned last_line;
	unsigned listen_scopes;  /* Listen scopes seen in ESMTP_Listener */
};

static char *xstrdup(const char *s)
{
	char *r = strdup(s);
	if (r == NULL)
		abort();
	return r;
}

static void *xcalloc(size_t n, size_t size)
{
	void *r = calloc(n ? n : 1, size);
	if (r == NULL)
		abort();
	return r;
}

static void *xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		abort();
	void *r = realloc(p, (n && size) ? n * size : 1);
	if (r == NULL)
		abort();
	return r;
}

#define ERR(c, line, ...) conf_error((c)->errs, (c)->file, (line), __VA_ARGS__)

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool name_is(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

/* A value for messages: printable ASCII kept, the rest as '?', truncated. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t i = 0;
	for (; s[i] && i + 4 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] && i + 4 >= len) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* ---- value checkers ---- */

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* "26214400", "25M", "512k", "1G" (binary multiples). */
static bool parse_size(const char *s, unsigned long long *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned long long mult = 1, v;

	if (n == 0 || n >= sizeof num)
		return false;
	switch (s[n - 1]) {
	case 'k': case 'K': mult = 1024ULL; n--; break;
	case 'm': case 'M': mult = 1024ULL * 1024; n--; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; n--; break;
	default: break;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	if (!parse_uint(num, UINT64_MAX / mult, &v))
		return false;
	*out = v * mult;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (name_is(s, yes[i])) {
			*out = true;
			return true;
		}
		if (name_is(s, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* A DNS name: labels of letters, digits, '-', '_' or UTF-8 bytes. */
static bool valid_domain(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static bool parse_port(const char *s, uint16_t *port)
{
	unsigned long long v;
	if (!parse_uint(s, 65535, &v) || v == 0)
		return false;
	*port = (uint16_t)v;
	return true;
}

bool mx_hostport_split(const char *text, char *host, size_t hostlen,
                       uint16_t *port, bool need_port)
{
	const char *colon;
	size_t hn;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL)
			return false;
		hn = (size_t)(close - text - 1);
		if (hn == 0 || hn >= hostlen)
			return false;
		memcpy(host, text + 1, hn);
		host[hn] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return false;
		if (close[1] == '\0') {
			*port = 0;
			return !need_port;
		}
		if (close[1] != ':')
			return false;
		return parse_port(close + 2, port);
	}
	colon = strrchr(text, ':');
	if (colon && memchr(text, ':', (size_t)(colon - text)) != NULL)
		return false; /* an IPv6 address without brackets */
	hn = colon ? (size_t)(colon - text) : strlen(text);
	if (hn == 0 || hn >= hostlen)
		return false;
	memcpy(host, text, hn);
	host[hn] = '\0';
	if (colon == NULL) {
		*port = 0;
		return !need_port;
	}
	return parse_port(colon + 1, port);
}

/* ---- paths ---- */

static char *resolve_path(struct ctx *c, const char *p)
{
	if (p[0] == '/')
		return xstrdup(p);
	size_t n = strlen(c->dir) + strlen(p) + 2;
	char *r = xcalloc(n, 1);
	snprintf(r, n, "%s/%s", c->dir, p);
	return r;
}

static char *dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');
	char cwd[PATH_MAX];
	char *d;

	if (slash == file)
		return xstrdup("/");
	if (slash && file[0] == '/') {
		d = xcalloc((size_t)(slash - file) + 1, 1);
		memcpy(d, file, (size_t)(slash - file));
		return d;
	}
	if (getcwd(cwd, sizeof cwd) == NULL)
		strcpy(cwd, ".");
	if (slash == NULL)
		return xstrdup(cwd);
	size_t n = strlen(cwd) + (size_t)(slash - file) + 2;
	d = xcalloc(n, 1);
	snprintf(d, n, "%s/%.*s", cwd, (int)(slash - file), file);
	return d;
}

static bool readable(const char *path, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		*err = errno;
		return false;
	}
	struct stat st;
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	close(fd);
	*err = ok ? 0 : EISDIR;
	return ok;
}

/* ---- option tables ---- */

enum opt_type {
	OPT_BOOL = 1,   /* bool */
	OPT_UINT,       /* unsigned, within [min, max] */
	OPT_SIZE,       /* uint64_t, with K/M/G */
	OPT_COUNT,      /* size_t, within [min, max] */
	OPT_ENUM,       /* int, one of choices */
	OPT_STRING,     /* char *, checked by `check` when set */
	OPT_PATH,       /* char *, resolved against the config folder */
	OPT_SPECIAL,    /* handled by `special` */
};

struct choice {
	const char *name;
	int value;
};

struct opt_def {
	const char *name;
	enum opt_type type;
	size_t off;
	unsigned long long min, max;
	const struct choice *choices; /* OPT_ENUM, terminated by a NULL name */
	/* OPT_STRING: return an error message or NULL */
	const char *(*check)(const char *value);
	/* OPT_SPECIAL: the whole node */
	void (*special)(struct ctx *c, const struct conf_node *n);
};

static const struct choice log_levels[] = {
	{"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"notice", LOG_NOTICE},
	{"warning", LOG_WARNING}, {"error", LOG_ERR}, {NULL, 0},
};
static const struct choice deliveries[] = {
	{"maildir", MX_DELIVERY_MAILDIR}, {"relay", MX_DELIVERY_RELAY}, {NULL, 0},
};
static const struct choice bare_lfs[] = {
	{"reject", MX_BARE_LF_REJECT}, {"normalize", MX_BARE_LF_NORMALIZE}, {NULL, 0},
};
static const struct choice runtime_errors[] = {
	{"fail", MX_RUNTIME_ERROR_FAIL}, {"continue", MX_RUNTIME_ERROR_CONTINUE}, {NULL, 0},
};

static const char *check_hostname(const char *v)
{
	return valid_domain(v) ? NULL : "is not a valid host name";
}

static const char *check_user(const char *v)
{
	if (*v == '\0')
		return "is empty";
	return getpwnam(v) ? NULL : "is not a known user";
}

static const char *check_relay_target(const char *v)
{
	char host[256];
	uint16_t port;
	if (!mx_hostport_split(v, host, sizeof host, &port, true))
		return "is not \"host:port\" or \"[IPv6]:port\"";
	return NULL;
}

static const char *check_dns_server(const char *v)
{
	char host[256];
	uint16_t port;
	struct ip_addr a;
	/* A bare IPv6 address needs no brackets when it has no port. */
	if (v[0] != '[' && ip_addr_parse(v, &a))
		return NULL;
	if (!mx_hostport_split(v, host, sizeof host, &port, false) ||
	    !ip_addr_parse(host, &a))
		return "is not \"IP\", \"IP:port\" or \"[IPv6]:port\"";
	return NULL;
}

/* Recipient_Delimiter: 1-8 of the atext specials (RFC 5322 §3.2.3) that
 * are not '.', each once. */
static const char *check_delimiter(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 8)
		return "must be 1 to 8 characters";
	for (size_t i = 0; i < n; i++) {
		if (strchr("!#$%&'*+-/=?^_`{|}~", v[i]) == NULL)
			return "may only hold the characters ! # $ % & ' * + - / = ? ^ _ ` { | } ~";
		if (memchr(v, v[i], i) != NULL)
			return "holds a character twice";
	}
	return NULL;
}

static void special_relay_hosts(struct ctx *c, const struct conf_node *n);
static void special_relay_domains(struct ctx *c, const struct conf_node *n);
static void special_monitors(struct ctx *c, const struct conf_node *n);

#define CFG(f) offsetof(struct mx_config, f)
static const struct opt_def global_opts[] = {
	{"Hostname", OPT_STRING, CFG(hostname), 0, 0, NULL, check_hostname, NULL},
	{"User", OPT_STRING, CFG(user), 0, 0, NULL, check_user, NULL},
	{"Log_Syslog", OPT_BOOL, CFG(log_syslog), 0, 0, NULL, NULL, NULL},
	{"Log_Level", OPT_ENUM, CFG(log_level), 0, 0, log_levels, NULL, NULL},
	{"Service_Sessions", OPT_UINT, CFG(service_sessions), 0, 1000000, NULL, NULL, NULL},
	{"Relay_Hosts", OPT_SPECIAL, 0, 0, 0, NULL, NULL, special_relay_hosts},
	{"Relay_Domains", OPT_SPECIAL, 0, 0, 0, NULL, NULL, special_relay_domains},
	{"Delivery", OPT_ENUM, CFG(delivery), 0, 0, deliveries, NULL, NULL},
	{"Maildir", OPT_PATH, CFG(maildir), 0, 0, NULL, NULL, NULL},
	{"Relay_Target", OPT_STRING, CFG(relay_target), 0, 0, NULL, check_relay_target, NULL},
	{"Fsync", OPT_BOOL, CFG(fsync), 0, 0, NULL, NULL, NULL},
	{"TLS_Certificate", OPT_PATH, CFG(tls_certificate), 0, 0, NULL, NULL, NULL},
	{"TLS_Key", OPT_PATH, CFG(tls_key), 0, 0, NULL, NULL, NULL},
	{"TLS_Dir", OPT_PATH, CFG(tls_dir), 0, 0, NULL, NULL, NULL},
	{"Bare_LF", OPT_ENUM, CFG(bare_lf), 0, 0, bare_lfs, NULL, NULL},
	{"Early_Talker_Reject", OPT_BOOL, CFG(early_talker_reject), 0, 0, NULL, NULL, NULL},
	{"Shutdown_Grace", OPT_UINT, CFG(shutdown_grace), 0, 3600, NULL, NULL, NULL},
	{"DNS_Server", OPT_STRING, CFG(dns_server), 0, 0, NULL, check_dns_server, NULL},
	{"Valid_Recipients", OPT_PATH, CFG(valid_recipients), 0, 0, NULL, NULL, NULL},
	{"Recipient_Delimiter", OPT_STRING, CFG(recipient_delimiter), 0, 0, NULL, check_delimiter,
	 NULL},
	{"Min_Free_Space", OPT_SIZE, CFG(min_free_space), 0, 0, NULL, NULL, NULL},
	{"Relay_Connections", OPT_UINT, CFG(relay_connections), 1, 256, NULL, NULL, NULL},
};
#define N_GLOBAL (sizeof global_opts / sizeof global_opts[0])
/* indexes into global_opts, for the cross-option checks */
enum {
	G_DELIVERY = 7, G_MAILDIR = 8, G_RELAY_TARGET = 9, G_TLS_CERT = 11, G_TLS_KEY = 12,
	G_TLS_DIR = 13, G_DNS_SERVER = 17, G_VALID_RECIPIENTS = 18
};

#define LIM(f) offsetof(struct mx_limits, f)
static const struct opt_def limit_opts[] = {
	{"Max_Message_Size", OPT_SIZE, LIM(max_message_size), 0, 0, NULL, NULL, NULL},
	{"Max_Recipients_Per_Message", OPT_UINT, LIM(max_recipients), 1, 100000, NULL, NULL, NULL},
	{"Max_Received_Headers", OPT_UINT, LIM(max_received), 0, 10000, NULL, NULL, NULL},
	{"Max_Receptions_Per_Connection", OPT_UINT, LIM(max_receptions), 0, 10000000, NULL, NULL, NULL},
	{"Max_Errors", OPT_UINT, LIM(max_errors), 1, 10000, NULL, NULL, NULL},
	{"Idle_Time", OPT_UINT, LIM(idle_time), 1, 86400, NULL, NULL, NULL},
	{"Data_Time", OPT_UINT, LIM(data_time), 1, 86400, NULL, NULL, NULL},
	{"Listener_Sessions", OPT_UINT, LIM(listener_sessions), 0, 1000000, NULL, NULL, NULL},
};
#define N_LIMIT (sizeof limit_opts / sizeof limit_opts[0])

#define LST(f) offsetof(struct mx_listen, f)
static const struct opt_def listen_opts[] = {
	{"Proxy_Protocol", OPT_BOOL, LST(proxy_protocol), 0, 0, NULL, NULL, NULL},
	{"Proxy_Timeout", OPT_UINT, LST(proxy_timeout), 1, 3600, NULL, NULL, NULL},
};
#define N_LISTEN (sizeof listen_opts / sizeof listen_opts[0])

#define AUD(f) offsetof(struct mx_audit_conf, f)
static const struct opt_def audit_opts[] = {
	{"Monitors", OPT_SPECIAL, 0, 0, 0, NULL, NULL, special_monitors},
	{"Max_Tracked", OPT_COUNT, AUD(max_tracked), 1, 100000000, NULL, NULL, NULL},
	{"Max_Memory", OPT_SIZE, AUD(max_memory), 1ull << 20, 1ull << 40, NULL, NULL, NULL},
};
#define N_AUDIT (sizeof audit_opts / sizeof audit_opts[0])

#define SIV(f) offsetof(struct mx_sieve_conf, f)
static const struct opt_def sieve_opts[] = {
	{"Runtime_Error", OPT_ENUM, SIV(runtime_error), 0, 0, runtime_errors, NULL, NULL},
	{"Max_Tarpit", OPT_UINT, SIV(max_tarpit), 0, 3600, NULL, NULL, NULL},
	{"Max_DNS_Lookups", OPT_UINT, SIV(max_dns_lookups), 0, 100, NULL, NULL, NULL},
	{"DNS_Timeout", OPT_UINT, SIV(dns_timeout), 1, 300, NULL, NULL, NULL},
	{"Max_Run_Time", OPT_UINT, SIV(max_run_time), 1, 60000, NULL, NULL, NULL},
};
#define N_SIEVE (sizeof sieve_opts / sizeof sieve_opts[0])

static const struct opt_def *find_opt(const struct opt_def *tab, size_t n,
                                      const char *name, size_t *index)
{
	for (size_t i = 0; i < n; i++)
		if (name_is(tab[i].name, name)) {
			*index = i;
			return &tab[i];
		}
	return NULL;
}

/* One scalar value, or an error. */
static const char *scalar(struct ctx *c, const struct conf_node *n)
{
	if (n->is_list || n->nvalues != 1) {
		ERR(c, n->line, "option '%s' takes one value, not a list", n->name);
		return NULL;
	}
	return n->values[0].text;
}

/* Set one option of `tab` in the struct at `base`; seen[] holds, per option,
 * the line where this scope set it (0 = not yet). */
static void set_opt(struct ctx *c, const struct opt_def *d, const struct conf_node *n,
                    void *base, unsigned *seen)
{
	char buf[80];
	const char *v;
	unsigned long long u;
	char *field = (char *)base + d->off;

	if (*seen) {
		ERR(c, n->line, "duplicate option '%s' (first set at line %u)", n->name, *seen);
		return;
	}
	*seen = n->line;
	if (d->type == OPT_SPECIAL) {
		d->special(c, n);
		return;
	}
	if ((v = scalar(c, n)) == NULL)
		return;
	switch (d->type) {
	case OPT_BOOL: {
		bool b;
		if (!parse_bool(v, &b)) {
			ERR(c, n->line, "bad value \"%s\" for '%s': expected true or false",
			    shown(v, buf, sizeof buf), n->name);
			return;
		}
		*(bool *)field = b;
		return;
	}
	case OPT_UINT:
	case OPT_COUNT:
		if (!parse_uint(v, d->max, &u) || u < d->min) {
			ERR(c, n->line, "bad value \"%s\" for '%s': expected a whole number from %llu to %llu",
			    shown(v, buf, sizeof buf), n->name, d->min, d->max);
			return;
		}
		if (d->type == OPT_UINT)
			*(unsigned *)field = (unsigned)u;
		else
			*(size_t *)field = (size_t)u;
		return;
	case OPT_SIZE:
		if (!parse_size(v, &u)) {
			ERR(c, n->line, "bad value \"%s\" for '%s': expected bytes, optionally with K, M or G",
			    shown(v, buf, sizeof buf), n->name);
			return;
		}
		if (d->max && (u < d->min || u > d->max)) { /* bounds in MiB */
			ERR(c, n->line, "bad value \"%s\" for '%s': expected %lluM to %lluM",
			    shown(v, buf, sizeof buf), n->name, d->min >> 20, d->max >> 20);
			return;
		}
		*(uint64_t *)field = u;
		return;
	case OPT_ENUM:
		for (const struct choice *ch = d->choices; ch->name; ch++)
			if (name_is(ch->name, v)) {
				*(int *)field = ch->value;
				return;
			}
		{
			char list[160] = "";
			for (const struct choice *ch = d->choices; ch->name; ch++) {
				strcat(list, ch->name == d->choices[0].name ? "" : ", ");
				strcat(list, ch->name);
			}
			ERR(c, n->line, "bad value \"%s\" for '%s': expected one of %s",
			    shown(v, buf, sizeof buf), n->name, list);
		}
		return;
	case OPT_STRING: {
		const char *why = d->check ? d->check(v) : NULL;
		if (why) {
			ERR(c, n->line, "bad value \"%s\" for '%s': %s",
			    shown(v, buf, sizeof buf), n->name, why);
			return;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(v);
		return;
	}
	case OPT_PATH:
		if (*v == '\0') {
			ERR(c, n->line, "bad value \"\" for '%s': empty path", n->name);
			return;
		}
		free(*(char **)field);
		*(char **)field = resolve_path(c, v);
		return;
	case OPT_SPECIAL:
		break;
	}
}

static void copy_field(const struct opt_def *d, void *dst, const void *src)
{
	size_t size = 0;
	switch (d->type) {
	case OPT_BOOL: size = sizeof(bool); break;
	case OPT_UINT: size = sizeof(unsigned); break;
	case OPT_SIZE: size = sizeof(uint64_t); break;
	case OPT_COUNT: size = sizeof(size_t); break;
	case OPT_ENUM: size = sizeof(int); break;
	default: abort(); /* only scalar fields fall back */
	}
	memcpy((char *)dst + d->off, (const char *)src + d->off, size);
}

/* ---- list options ---- */

static void special_relay_hosts(struct ctx *c, const struct conf_node *n)
{
	struct mx_config *cfg = c->cfg;
	char buf[80];

	for (size_t i = 0; i < n->nvalues; i++) {
		struct mx_cidr b;
		if (!ip_block_parse(n->values[i].text, &b.net, &b.prefix)) {
			ERR(c, n->values[i].line, "bad address or CIDR block \"%s\" in '%s'",
			    shown(n->values[i].text, buf, sizeof buf), n->name);
			continue;
		}
		cfg->relay_hosts = xreallocarray(cfg->relay_hosts, cfg->nrelay_hosts + 1,
		                                 sizeof *cfg->relay_hosts);
		cfg->relay_hosts[cfg->nrelay_hosts++] = b;
	}
}

static void special_relay_domains(struct ctx *c, const struct conf_node *n)
{
	struct mx_config *cfg = c->cfg;
	char buf[80];

	for (size_t i = 0; i < n->nvalues; i++) {
		const char *v = n->values[i].text;
		if (!valid_domain(v)) {
			ERR(c, n->values[i].line, "bad domain \"%s\" in '%s'",
			    shown(v, buf, sizeof buf), n->name);
			continue;
		}
		char *d = xstrdup(v);
		size_t len = strlen(d);
		if (d[len - 1] == '.')
			d[len - 1] = '\0';
		for (char *p = d; *p; p++)
			*p = ascii_lower(*p);
		cfg->relay_domains = xreallocarray(cfg->relay_domains, cfg->nrelay_domains + 1,
		                                   sizeof *cfg->relay_domains);
		cfg->relay_domains[cfg->nrelay_domains++] = d;
	}
}

/* mx_recipients_load's check that an entry's domain is ours. */
static bool accepts_domain_cb(const char *domain, void *arg)
{
	return mx_config_accepts_domain(arg, domain);
}

/* monitors = ( "W,N" ... ): N windows of W seconds each. */
static void special_monitors(struct ctx *c, const struct conf_node *n)
{
	struct mx_audit_conf *a = &c->cfg->audit;
	char buf[80];

	for (size_t i = 0; i < n->nvalues; i++) {
		const char *v = n->values[i].text;
		const char *comma = strchr(v, ',');
		char w[24];
		unsigned long long win = 0, cnt = 0;
		size_t wn = comma ? (size_t)(comma - v) : 0;
		bool ok = comma && wn > 0 && wn < sizeof w;
		if (ok) {
			memcpy(w, v, wn);
			w[wn] = '\0';
			ok = parse_uint(w, 7 * 86400, &win) && win > 0 &&
			     parse_uint(comma + 1, 1000, &cnt) && cnt > 0;
		}
		if (!ok) {
			ERR(c, n->values[i].line,
			    "bad monitor \"%s\": expected \"SECONDS,WINDOWS\" (1-604800, 1-1000)",
			    shown(v, buf, sizeof buf));
			continue;
		}
		if (a->nmonitors == MX_AUDIT_MONITORS_MAX) {
			ERR(c, n->values[i].line, "too many monitors: at most %d",
			    MX_AUDIT_MONITORS_MAX);
			break;
		}
		a->monitors = xreallocarray(a->monitors, a->nmonitors + 1, sizeof *a->monitors);
		a->monitors[a->nmonitors].window = (unsigned)win;
		a->monitors[a->nmonitors].count = (unsigned)cnt;
		a->nmonitors++;
	}
}

/* ---- scopes ---- */

/* A scope's argument, required, or an error. */
static const char *scope_arg(struct ctx *c, const struct conf_node *n, const char *what)
{
	if (n->arg == NULL) {
		ERR(c, n->line, "scope '%s' needs %s", n->name, what);
		return NULL;
	}
	return n->arg->text;
}

static void no_arg(struct ctx *c, const struct conf_node *n)
{
	char buf[80];
	if (n->arg)
		ERR(c, n->line, "scope '%s' takes no argument (got \"%s\")", n->name,
		    shown(n->arg->text, buf, sizeof buf));
}

/* An option where a scope was expected, or the reverse. */
static void misplaced(struct ctx *c, const struct conf_node *n, const char *where)
{
	if (n->kind == CONF_NODE_SCOPE)
		ERR(c, n->line, "unknown scope '%s' in %s", n->name, where);
	else
		ERR(c, n->line, "unknown option '%s' in %s", n->name, where);
}

struct limits_level {
	struct mx_limits v;
	unsigned seen[N_LIMIT];
};

struct listen_level {
	struct mx_listen v;
	unsigned seen[N_LISTEN];
};

static bool try_limit(struct ctx *c, const struct conf_node *n, struct limits_level *l)
{
	size_t i;
	const struct opt_def *d = find_opt(limit_opts, N_LIMIT, n->name, &i);
	if (d == NULL || n->kind != CONF_NODE_OPTION)
		return false;
	set_opt(c, d, n, &l->v, &l->seen[i]);
	return true;
}

static bool try_listen_opt(struct ctx *c, const struct conf_node *n, struct listen_level *l)
{
	size_t i;
	const struct opt_def *d = find_opt(listen_opts, N_LISTEN, n->name, &i);
	if (d == NULL || n->kind != CONF_NODE_OPTION)
		return false;
	set_opt(c, d, n, &l->v, &l->seen[i]);
	return true;
}

/* Check "host:port" of a Listen and fill host and port. */
static bool parse_listen_address(struct ctx *c, const struct conf_node *n,
                                 const char *text, struct mx_listen *out)
{
	char host[INET6_ADDRSTRLEN + 2], buf[80];
	uint16_t port;
	const char *colon = strrchr(text, ':');
	struct in_addr a4;

	if (text[0] != '[' && colon && memchr(text, ':', (size_t)(colon - text))) {
		ERR(c, n->line, "Listen \"%s\": an IPv6 address needs brackets, as \"[ADDR]:PORT\"",
		    shown(text, buf, sizeof buf));
		return false;
	}
	if (!mx_hostport_split(text, host, sizeof host, &port, true)) {
		ERR(c, n->line, "Listen \"%s\": expected \"IPv4:PORT\", \"[IPv6]:PORT\" or \"*:PORT\"",
		    shown(text, buf, sizeof buf));
		return false;
	}
	if (text[0] != '[' && strcmp(host, "*") != 0 && inet_pton(AF_INET, host, &a4) != 1) {
		ERR(c, n->line, "Listen \"%s\": \"%s\" is not an IP address or '*'",
		    shown(text, buf, sizeof buf), host);
		return false;
	}
	out->host = xstrdup(host);
	out->port = port;
	return true;
}

static void walk_listen(struct ctx *c, const struct conf_node *n,
                        const struct limits_level *glob, const struct limits_level *outer,
                        const struct listen_level *outer_listen)
{
	struct mx_config *cfg = c->cfg;
	struct limits_level lim;
	struct listen_level lst;
	struct mx_listen tmp;
	const char *addr = scope_arg(c, n, "an address, as Listen \"127.0.0.1:25\"");

	memset(&lim, 0, sizeof lim);
	memset(&lst, 0, sizeof lst);
	for (const struct conf_node *ch = n->children; ch; ch = ch->next)
		if (!try_limit(c, ch, &lim) && !try_listen_opt(c, ch, &lst))
			misplaced(c, ch, "Listen");
	if (addr == NULL)
		return;
	memset(&tmp, 0, sizeof tmp);
	if (!parse_listen_address(c, n, addr, &tmp))
		return;
	for (size_t i = 0; i < cfg->nlistens; i++) {
		const struct mx_listen *o = &cfg->listens[i];
		struct ip_addr a, b;
		bool same = o->port == tmp.port &&
		            (strcmp(o->host, tmp.host) == 0 ||
		             (ip_addr_parse(o->host, &a) && ip_addr_parse(tmp.host, &b) &&
		              ip_addr_equal(&a, &b)));
		if (same) {
			ERR(c, n->line, "duplicate Listen \"%s\" (first at line %u)", addr, o->line);
			free(tmp.host);
			return;
		}
		/* "*" binds 0.0.0.0 and [::]: no other address can take its port */
		if (o->port == tmp.port && (strcmp(o->host, "*") == 0 || strcmp(tmp.host, "*") == 0)) {
			ERR(c, n->line, "Listen \"%s\" overlaps Listen \"%s\" (line %u): '*' is every "
			    "address, IPv4 and IPv6, on that port", addr, o->address, o->line);
			free(tmp.host);
			return;
		}
	}
	tmp.address = xstrdup(addr);
	tmp.line = n->line;
	/* defaults, then the outer scope's values, then this Listen's */
	tmp.proxy_timeout = 5;
	for (size_t i = 0; i < N_LISTEN; i++) {
		if (lst.seen[i])
			copy_field(&listen_opts[i], &tmp, &lst.v);
		else if (outer_listen->seen[i])
			copy_field(&listen_opts[i], &tmp, &outer_listen->v);
	}
	tmp.limits = glob->v; /* globals already hold the defaults */
	for (size_t i = 0; i < N_LIMIT; i++) {
		if (lim.seen[i])
			copy_field(&limit_opts[i], &tmp.limits, &lim.v);
		else if (outer->seen[i])
			copy_field(&limit_opts[i], &tmp.limits, &outer->v);
	}
	cfg->listens = xreallocarray(cfg->listens, cfg->nlistens + 1, sizeof *cfg->listens);
	cfg->listens[cfg->nlistens++] = tmp;
}

static void walk_esmtp_listener(struct ctx *c, const struct conf_node *n,
                                const struct limits_level *glob)
{
	struct limits_level lim;
	struct listen_level lst;

	no_arg(c, n);
	memset(&lim, 0, sizeof lim);
	memset(&lst, 0, sizeof lst);
	/* options first, whatever their place, so they apply to every Listen */
	for (const struct conf_node *ch = n->children; ch; ch = ch->next) {
		if (ch->kind == CONF_NODE_SCOPE && name_is(ch->name, "Listen"))
			continue;
		if (!try_limit(c, ch, &lim) && !try_listen_opt(c, ch, &lst))
			misplaced(c, ch, "ESMTP_Listener");
	}
	for (const struct conf_node *ch = n->children; ch; ch = ch->next)
		if (ch->kind == CONF_NODE_SCOPE && name_is(ch->name, "Listen"))
		{
			c->listen_scopes++;
			walk_listen(c, ch, glob, &lim, &lst);
		}
}

/* A scope that takes exactly one `Listen "ARG" { }`: ARG (non-empty), or
 * NULL after reporting what was wrong; *line is where it is. */
static const char *one_listen(struct ctx *c, const struct conf_node *n, const char *what,
                              const char *noun, unsigned *line)
{
	const char *arg = NULL;
	unsigned first = 0;

	no_arg(c, n);
	for (const struct conf_node *ch = n->children; ch; ch = ch->next) {
		if (ch->kind != CONF_NODE_SCOPE || !name_is(ch->name, "Listen")) {
			misplaced(c, ch, n->name);
			continue;
		}
		char where[64];
		snprintf(where, sizeof where, "%s Listen", n->name);
		for (const struct conf_node *g = ch->children; g; g = g->next)
			misplaced(c, g, where);
		const char *p = scope_arg(c, ch, what);
		if (p == NULL)
			continue;
		if (first) {
			ERR(c, ch->line, "%s takes one Listen (first at line %u)", n->name, first);
			continue;
		}
		if (*p == '\0') {
			ERR(c, ch->line, "%s Listen: empty %s", n->name, noun);
			continue;
		}
		first = ch->line;
		arg = p;
	}
	*line = first;
	return arg;
}

static void walk_control_listener(struct ctx *c, const struct conf_node *n)
{
	char buf[80];
	unsigned line;
	const char *p = one_listen(c, n, "a socket path, as Listen \"/run/mxsieve.ctl\"", "path",
	                           &line);
	if (p == NULL)
		return;
	char *r = resolve_path(c, p);
	struct stat st;
	if (strlen(r) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		ERR(c, line, "Control_Listener Listen \"%s\": path longer than %zu bytes",
		    shown(p, buf, sizeof buf), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		free(r);
		return;
	}
	if (r[strlen(r) - 1] == '/') {
		ERR(c, line, "Control_Listener Listen \"%s\": a socket path, not a folder",
		    shown(p, buf, sizeof buf));
		free(r);
		return;
	}
	/* the start replaces a stale socket there, and nothing else */
	if (lstat(r, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		ERR(c, line, "Control_Listener Listen \"%s\": %s exists and is not a socket",
		    shown(p, buf, sizeof buf), r);
		free(r);
		return;
	}
	c->cfg->control_path = r;
	c->cfg->control_line = line;
}

static void walk_metrics_listener(struct ctx *c, const struct conf_node *n)
{
	char buf[80], host[256];
	unsigned line;
	uint16_t port;
	const char *p = one_listen(c, n, "an address, as Listen \"127.0.0.1:9425\"", "address",
	                           &line);
	if (p == NULL)
		return;
	if (!mx_hostport_split(p, host, sizeof host, &port, true) || port == 0) {
		ERR(c, line, "Metrics_Listener Listen \"%s\": expected \"ADDRESS:PORT\" "
		    "(\"[::1]:PORT\" for IPv6)", shown(p, buf, sizeof buf));
		return;
	}
	/* as for ESMTP Listen: an address, never a name (brackets were
	 * checked as IPv6 already) */
	struct in_addr a4;
	if (p[0] != '[' && inet_pton(AF_INET, host, &a4) != 1) {
		ERR(c, line, "Metrics_Listener Listen \"%s\": \"%s\" is not an IP address",
		    shown(p, buf, sizeof buf), host);
		return;
	}
	c->cfg->metrics_address = xstrdup(p);
	c->cfg->metrics_line = line;
}

static void walk_audit(struct ctx *c, const struct conf_node *n)
{
	unsigned seen[N_AUDIT] = {0};
	size_t i;

	no_arg(c, n);
	for (const struct conf_node *ch = n->children; ch; ch = ch->next) {
		const struct opt_def *d = find_opt(audit_opts, N_AUDIT, ch->name, &i);
		if (d == NULL || ch->kind != CONF_NODE_OPTION) {
			misplaced(c, ch, "inbound_audit");
			continue;
		}
		set_opt(c, d, ch, &c->cfg->audit, &seen[i]);
	}
}

/* "connect_phase1" -> MX_PHASE_CONNECT, 0. */
static bool parse_script_name(const char *s, enum mx_phase *phase, int *which)
{
	for (int p = 0; p < MX_PHASE_COUNT; p++) {
		const char *name = mx_phase_name((enum mx_phase)p);
		char want[32];
		for (int w = 1; w <= 2; w++) {
			snprintf(want, sizeof want, "%s_phase%d", name, w);
			if (name_is(s, want)) {
				*phase = (enum mx_phase)p;
				*which = w - 1;
				return true;
			}
		}
	}
	return false;
}

static void walk_script(struct ctx *c, const struct conf_node *n, struct mx_sieve_conf *s)
{
	char buf[80];
	enum mx_phase phase;
	int which;
	const char *name = scope_arg(c, n, "a phase, as script connect_phase1");
	const struct conf_node *source = NULL;

	for (const struct conf_node *ch = n->children; ch; ch = ch->next) {
		if (ch->kind == CONF_NODE_OPTION && name_is(ch->name, "source")) {
			if (source)
				ERR(c, ch->line, "duplicate option '%s' (first set at line %u)",
				    ch->name, source->line);
			else
				source = ch;
			continue;
		}
		misplaced(c, ch, "script");
	}
	if (name == NULL)
		return;
	if (!parse_script_name(name, &phase, &which)) {
		ERR(c, n->line, "unknown script phase \"%s\": expected PHASE_phase1 or PHASE_phase2,"
		    " PHASE one of connect, ehlo, mailfrom, rcptto, data",
		    shown(name, buf, sizeof buf));
		return;
	}
	struct mx_script_conf *sc = &s->scripts[phase][which];
	if (sc->line) {
		ERR(c, n->line, "duplicate script %s (first at line %u)", name, sc->line);
		return;
	}
	if (source == NULL) {
		ERR(c, n->line, "script %s needs source = \"PATH\"", name);
		return;
	}
	const char *v = scalar(c, source);
	if (v == NULL)
		return;
	if (*v == '\0') {
		ERR(c, source->line, "script %s: empty source path", name);
		return;
	}
	char *path = resolve_path(c, v);
	int err;
	if (!readable(path, &err)) {
		ERR(c, source->line, "script %s: cannot read \"%s\": %s", name,
		    shown(path, buf, sizeof buf), strerror(err));
		free(path);
		return;
	}
	sc->source = path;
	sc->line = source->line;
}

static void walk_sieve(struct ctx *c, const struct conf_node *n, unsigned *first)
{
	unsigned seen[N_SIEVE] = {0};
	size_t i;
	const char *name = scope_arg(c, n, "a name, as sieve \"default\"");

	if (*first) {
		ERR(c, n->line, "only one sieve stanza is supported (first at line %u)", *first);
		return;
	}
	*first = n->line;
	struct mx_sieve_conf *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name ? name : "");
	s->runtime_error = MX_RUNTIME_ERROR_FAIL;
	/* = SIEVE_DEFAULT_MAX_TARPIT, _MAX_DNS_LOOKUPS and _MAX_RUN_TIME
	 * (sieve/sieve_limits.h, which conf/ may not include; test_config
	 * checks they agree); docs/CONFIGURATION.md documents them */
	s->max_tarpit = 60;
	s->max_dns_lookups = 4;
	s->dns_timeout = 5;
	s->max_run_time = 100; /* = SIEVE_DEFAULT_MAX_RUN_TIME */
	c->cfg->sieve = s;
	for (const struct conf_node *ch = n->children; ch; ch = ch->next) {
		if (ch->kind == CONF_NODE_SCOPE && name_is(ch->name, "script")) {
			walk_script(c, ch, s);
			continue;
		}
		const struct opt_def *d = find_opt(sieve_opts, N_SIEVE, ch->name, &i);
		if (d == NULL || ch->kind != CONF_NODE_OPTION) {
			misplaced(c, ch, "sieve");
			continue;
		}
		set_opt(c, d, ch, s, &seen[i]);
	}
}

/* The top level: global options and limits first, then the scopes (which
 * need the global limits to fall back on). */
static void walk_top(struct ctx *c, const struct conf_node *list)
{
	struct mx_config *cfg = c->cfg;
	unsigned gseen[N_GLOBAL] = {0};
	struct limits_level glob;
	unsigned esmtp = 0, control = 0, metrics = 0, audit = 0, sieve = 0;
	size_t i;

	memset(&glob, 0, sizeof glob);
	glob.v.max_message_size = 25ULL * 1024 * 1024;
	glob.v.max_recipients = 100;
	glob.v.max_receptions = 0;
	glob.v.max_errors = 20;
	glob.v.idle_time = 300;
	glob.v.data_time = 600;
	glob.v.listener_sessions = 0;
	glob.v.max_received = 100;

	for (const struct conf_node *n = list; n; n = n->next) {
		if (n->kind == CONF_NODE_SCOPE)
			continue;
		const struct opt_def *d = find_opt(global_opts, N_GLOBAL, n->name, &i);
		if (d) {
			set_opt(c, d, n, cfg, &gseen[i]);
			continue;
		}
		if (try_limit(c, n, &glob))
			continue;
		if (find_opt(listen_opts, N_LISTEN, n->name, &i))
			ERR(c, n->line, "option '%s' belongs in ESMTP_Listener or Listen", n->name);
		else
			ERR(c, n->line, "unknown option '%s'", n->name);
	}
	for (const struct conf_node *n = list; n; n = n->next) {
		if (n->kind != CONF_NODE_SCOPE)
			continue;
		unsigned *first = NULL;
		if (name_is(n->name, "ESMTP_Listener"))
			first = &esmtp;
		else if (name_is(n->name, "Control_Listener"))
			first = &control;
		else if (name_is(n->name, "Metrics_Listener"))
			first = &metrics;
		else if (name_is(n->name, "inbound_audit"))
			first = &audit;
		else if (name_is(n->name, "sieve")) {
			walk_sieve(c, n, &sieve);
			continue;
		} else {
			ERR(c, n->line, "unknown scope '%s'", n->name);
			continue;
		}
		if (*first) {
			ERR(c, n->line, "duplicate scope '%s' (first at line %u)", n->name, *first);
			continue;
		}
		*first = n->line;
		if (first == &esmtp)
			walk_esmtp_listener(c, n, &glob);
		else if (first == &control)
			walk_control_listener(c, n);
		else if (first == &metrics)
			walk_metrics_listener(c, n);
		else
			walk_audit(c, n);
	}

	/* cross-option checks */
	if (c->listen_scopes == 0)
		ERR(c, esmtp ? esmtp : c->last_line,
		    "no ESMTP_Listener Listen address is configured");
	unsigned dline = gseen[G_DELIVERY] ? gseen[G_DELIVERY] : c->last_line;
	if (cfg->delivery == MX_DELIVERY_MAILDIR && cfg->maildir == NULL && !gseen[G_MAILDIR])
		ERR(c, dline, "Delivery \"maildir\" needs Maildir = \"PATH\"");
	if (cfg->delivery == MX_DELIVERY_RELAY && cfg->relay_target == NULL && !gseen[G_RELAY_TARGET])
		ERR(c, dline, "Delivery \"relay\" needs Relay_Target = \"host:port\"");
	if (gseen[G_TLS_KEY] && !gseen[G_TLS_CERT])
		ERR(c, gseen[G_TLS_KEY], "TLS_Key is set but TLS_Certificate is not");
	if (cfg->tls_certificate && cfg->tls_key == NULL)
		cfg->tls_key = xstrdup(cfg->tls_certificate); /* one PEM with both */
	int err;
	if (cfg->tls_certificate && !readable(cfg->tls_certificate, &err))
		ERR(c, gseen[G_TLS_CERT], "TLS_Certificate \"%s\": %s", cfg->tls_certificate,
		    strerror(err));
	else if (cfg->tls_certificate && gseen[G_TLS_KEY] && !readable(cfg->tls_key, &err))
		ERR(c, gseen[G_TLS_KEY], "TLS_Key \"%s\": %s", cfg->tls_key, strerror(err));
	if (cfg->tls_dir == NULL && cfg->tls_certificate == NULL)
		cfg->tls_dir = resolve_path(c, "tls");
	/* what the start-up does with these can still fail (bind, load a
	 * key): its errors name these lines */
	cfg->maildir_line = gseen[G_MAILDIR];
	cfg->tls_certificate_line = gseen[G_TLS_CERT];
	cfg->tls_key_line = gseen[G_TLS_KEY];
	cfg->tls_dir_line = gseen[G_TLS_DIR];
	cfg->dns_server_line = gseen[G_DNS_SERVER];
	if (cfg->valid_recipients) {
		struct mx_recipients_opts ro = {accepts_domain_cb, cfg,
		                                cfg->delivery == MX_DELIVERY_MAILDIR};
		cfg->recipients = mx_recipients_load(cfg->valid_recipients, c->file,
		                                     gseen[G_VALID_RECIPIENTS], &ro, c->errs);
	}
}

static struct mx_config *config_new(const char *path)
{
	struct mx_config *cfg = xcalloc(1, sizeof *cfg);
	cfg->path = xstrdup(path);
	cfg->log_level = LOG_INFO;
	cfg->service_sessions = 1000;
	cfg->delivery = MX_DELIVERY_MAILDIR;
	cfg->fsync = true;
	cfg->bare_lf = MX_BARE_LF_REJECT;
	cfg->shutdown_grace = 30;
	cfg->min_free_space = 100ULL * 1024 * 1024;
	cfg->relay_connections = 8;
	cfg->audit.max_tracked = 1000000;
	cfg->audit.max_memory = (uint64_t)2 << 30;
	return cfg;
}

struct mx_config *mx_config_load_text(const char *path, const char *text,
                                      size_t len, char **errors)
{
	struct conf_errors errs = {NULL, 0, 0, 0};
	struct ctx c;
	bool ok;
	unsigned last = 1;

	memset(&c, 0, sizeof c);
	c.file = path;
	c.errs = &errs;
	struct conf_node *tree = conf_parse(path, text, len, &errs, &ok, &last);
	struct mx_config *cfg = NULL;
	if (ok) {
		cfg = config_new(path);
		c.cfg = cfg;
		c.dir = dir_of(path);
		c.last_line = last;
		walk_top(&c, tree);
		if (cfg->hostname == NULL) {
			char h[256];
			if (gethostname(h, sizeof h) != 0 || h[0] == '\0')
				strcpy(h, "localhost");
			h[sizeof h - 1] = '\0';
			cfg->hostname = xstrdup(h);
		}
		free(c.dir);
	}
	conf_node_free(tree);
	if (errs.count) {
		mx_config_free(cfg);
		if (errors)
			*errors = errs.buf;
		else
			free(errs.buf);
		return NULL;
	}
	if (errors)
		*errors = NULL;
	return cfg;
}

struct mx_config *mx_config_load(const char *path, char **errors)
{
	FILE *f = fopen(path, "rb");
	struct conf_errors errs = {NULL, 0, 0, 0};
	char *text = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		conf_error(&errs, path, 0, "cannot open: %s", strerror(errno));
		goto fail;
	}
	for (;;) {
		if (len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > 16u * 1024 * 1024) {
				fclose(f);
				conf_error(&errs, path, 0, "file larger than 16 MiB");
				goto fail;
			}
			text = xreallocarray(text, cap, 1);
		}
		size_t r = fread(text + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		conf_error(&errs, path, 0, "cannot read: %s", strerror(errno));
		fclose(f);
		goto fail;
	}
	fclose(f);
	struct mx_config *cfg = mx_config_load_text(path, text ? text : "", len, errors);
	free(text);
	return cfg;
fail:
	free(text);
	if (errors)
		*errors = errs.buf;
	else
		free(errs.buf);
	return NULL;
}

void mx_config_free(struct mx_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->user);
	for (size_t i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].address);
		free(cfg->listens[i].host);
	}
	free(cfg->listens);
	free(cfg->control_path);
	free(cfg->metrics_address);
	free(cfg->relay_hosts);
	for (size_t i = 0; i < cfg->nrelay_domains; i++)
		free(cfg->relay_domains[i]);
	free(cfg->relay_domains);
	free(cfg->valid_recipients);
	free(cfg->recipient_delimiter);
	mx_recipients_free(cfg->recipients);
	free(cfg->maildir);
	free(cfg->relay_target);
	free(cfg->tls_certificate);
	free(cfg->tls_key);
	free(cfg->tls_dir);
	free(cfg->dns_server);
	free(cfg->audit.monitors);
	if (cfg->sieve) {
		free(cfg->sieve->name);
		for (int p = 0; p < MX_PHASE_COUNT; p++)
			for (int w = 0; w < 2; w++)
				free(cfg->sieve->scripts[p][w].source);
		free(cfg->sieve);
	}
	free(cfg);
}

bool mx_config_can_relay(const struct mx_config *cfg, const struct ip_addr *client)
{
	for (size_t i = 0; i < cfg->nrelay_hosts; i++)
		if (ip_addr_in_block(client, &cfg->relay_hosts[i].net, cfg->relay_hosts[i].prefix))
			return true;
	return false;
}

bool mx_config_accepts_domain(const struct mx_config *cfg, const char *domain)
{
	size_t n = strlen(domain);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	for (size_t i = 0; i < cfg->nrelay_domains; i++) {
		const char *d = cfg->relay_domains[i];
		if (strlen(d) != n)
			continue;
		size_t k = 0;
		while (k < n && ascii_lower(domain[k]) == d[k])
			k++;
		if (k == n)
			return true;
	}
	return false;
}

size_t mx_config_mailbox_len(const struct mx_config *cfg, const char *local)
{
	size_t n = strlen(local);
	if (cfg->recipient_delimiter == NULL || local[0] == '"')
		return n;
	size_t k = strcspn(local, cfg->recipient_delimiter);
	return k == 0 ? n : k;
}

static bool str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

static bool monitors_differ(const struct mx_audit_conf *a, const struct mx_audit_conf *b)
{
	if (a->nmonitors != b->nmonitors || a->max_tracked != b->max_tracked ||
	    a->max_memory != b->max_memory)
		return true;
	for (size_t i = 0; i < a->nmonitors; i++)
		if (a->monitors[i].window != b->monitors[i].window ||
		    a->monitors[i].count != b->monitors[i].count)
			return true;
	return false;
}

size_t mx_config_restart_changes(const struct mx_config *old, const struct mx_config *cfg,
                                 char *out, size_t len)
{
	const struct {
		const char *name;
		bool changed;
	} items[] = {
		{"User", str_differs(old->user, cfg->user)},
		{"Log_Syslog", old->log_syslog != cfg->log_syslog},
		{"Control_Listener", str_differs(old->control_path, cfg->control_path)},
		{"Metrics_Listener", str_differs(old->metrics_address, cfg->metrics_address)},
		{"Delivery", old->delivery != cfg->delivery},
		{"Maildir", str_differs(old->maildir, cfg->maildir)},
		{"Relay_Target", str_differs(old->relay_target, cfg->relay_target)},
		{"Relay_Connections", old->delivery == MX_DELIVERY_RELAY &&
		                          old->relay_connections != cfg->relay_connections},
		{"Fsync", old->fsync != cfg->fsync},
		{"inbound_audit", monitors_differ(&old->audit, &cfg->audit)},
	};
	size_t n = 0, used = 0;

	if (len > 0)
		out[0] = '\0';
	for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
		if (!items[i].changed)
			continue;
		size_t w = strlen(items[i].name) + (n ? 2 : 0);
		if (used + w < len) /* whole names only */
			used += (size_t)snprintf(out + used, len - used, "%s%s", n ? ", " : "",
			                         items[i].name);
		n++;
	}
	return n;
}

const char *mx_phase_name(enum mx_phase phase)
{
	static const char *const names[MX_PHASE_COUNT] = {
		"connect", "ehlo", "mailfrom", "rcptto", "data",
	};
	if ((unsigned)phase >= MX_PHASE_COUNT)
		return "?";
	return names[phase];
}
