/*
 * audit: the public face of inbound_audit (see audit.h for the design): the
 * live gauge over live.c's tries, the monitors and named series over
 * window.c's tries, policy-argument parsing and the console text.
 */
#include "audit/audit.h"
#include "audit/audit_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT_MAX_TRACKED 262144
#define AUDIT_DEFAULT_MAX_MEMORY ((size_t)2 << 30)
#define AUDIT_WINDOWS_MAX 1024
#define AUDIT_WINDOW_S_MAX 1000000u
#define AUDIT_SERIES_MAX 32
#define AUDIT_SERIES_NAME_MAX 63
#define AUDIT_TICK_BUDGET 256
#define AUDIT_TOP_MAX 10000

struct audit_named {
	char name[AUDIT_SERIES_NAME_MAX + 1];
	unsigned window, count;
	struct audit_wtrie *t;
};

struct audit {
	struct audit_mtrie service;           /* every listener: block counts */
	struct audit_xhash exact[2];          /* [0] IPv4, [1] IPv6: per address */
	struct audit_mtrie **ltrie;           /* [l], l >= 1: listener l's own trie
	                                       * (NULL while it has no session);
	                                       * listener 0 is service - the rest */
	unsigned nlisteners;                  /* highest listener seen + 1 */
	struct audit_xhash hint[2][AUDIT_HINTS_MAX]; /* per family: the blocks */
	unsigned hint_len[2][AUDIT_HINTS_MAX];       /* of these lengths */
	unsigned nhints[2];
	struct audit_monitor_spec monitors[AUDIT_MONITORS_MAX];
	size_t nmonitors;
	struct audit_wtrie *mon;              /* all monitors, 3 counters each */
	struct audit_named series[AUDIT_SERIES_MAX];
	size_t nseries;
	size_t max_tracked;
	size_t max_memory;   /* windowed data: half for the monitors, 1/64 per series */
	size_t monitor_cap;  /* addresses the monitors keep (max_tracked or less) */
	size_t tick_next;                     /* round-robin over windowed tries */
};

static const char *const counter_names[AUDIT_COUNTER_COUNT] = {
	"Connections", "Receptions", "Rejections",
};

/* Copy of a, with an unfolded v4-mapped IPv6 address made IPv4. */
static struct ip_addr norm(const struct ip_addr *a)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	struct ip_addr r = *a;
	if (r.family == IP_V6 && memcmp(r.bytes, mapped, 12) == 0) {
		memmove(r.bytes, r.bytes + 12, 4);
		memset(r.bytes + 4, 0, 12);
		r.family = IP_V4;
	}
	return r;
}

/* The live gauge's key for a, v4-mapped IPv6 folded to IPv4: returns 32 or
 * 128, or 0 for no address. Reads a in place (no copy to compare: the hot
 * path). */
static unsigned live_key(const struct ip_addr *a, uint32_t key[4])
{
	const uint8_t *b = a->bytes;
	if (a->family == IP_V6) {
		uint64_t hi;
		memcpy(&hi, b, 8);
		if (!(hi == 0 && b[8] == 0 && b[9] == 0 && b[10] == 0xff && b[11] == 0xff))
			return audit_key_from(a, key);
		key[0] = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
		key[1] = key[2] = key[3] = 0;
		return 32;
	}
	if (a->family != IP_V4)
		return 0;
	return audit_key_from(a, key);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The argument as it may appear in an error message: at most 64 bytes,
 * anything not printable ASCII shown as '?'. */
static const char *shown(const char *arg, char buf[72])
{
	size_t i = 0;
	for (; arg[i] != '\0' && i < 64; i++)
		buf[i] = (arg[i] >= 0x20 && arg[i] < 0x7f) ? arg[i] : '?';
	if (arg[i] != '\0') {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* Addresses a windowed trie may keep: max_tracked, or fewer when that
 * many would take more than `budget` bytes (two nodes an address). */
static size_t cap_for(const struct audit *a, size_t budget, const struct audit_wseries *ws,
                      size_t n)
{
	size_t per = 2 * audit_wtrie_node_bytes(ws, n);
	size_t cap = budget / per;
	if (cap > a->max_tracked)
		cap = a->max_tracked;
	return cap ? cap : 1;
}

struct audit *audit_create(const struct audit_config *cfg)
{
	struct audit *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	audit_mtrie_init(&a->service);
	audit_xhash_init(&a->exact[0], 1);
	audit_xhash_init(&a->exact[1], 4);
	a->max_tracked = cfg && cfg->max_tracked ? cfg->max_tracked : AUDIT_DEFAULT_MAX_TRACKED;
	a->max_memory = cfg && cfg->max_memory ? cfg->max_memory : AUDIT_DEFAULT_MAX_MEMORY;
	if (cfg && cfg->nmonitors > 0) {
		struct audit_wseries ws[AUDIT_MONITORS_MAX];
		if (cfg->nmonitors > AUDIT_MONITORS_MAX)
			goto fail;
		for (size_t m = 0; m < cfg->nmonitors; m++) {
			const struct audit_monitor_spec *sp = &cfg->monitors[m];
			if (sp->window == 0 || sp->window > AUDIT_WINDOW_S_MAX ||
			    sp->count == 0 || sp->count > AUDIT_WINDOWS_MAX)
				goto fail;
			a->monitors[m] = *sp;
			ws[m] = (struct audit_wseries){.window_s = sp->window, .nwin = sp->count,
			                               .ncounters = AUDIT_COUNTER_COUNT};
		}
		a->nmonitors = cfg->nmonitors;
		a->monitor_cap = cap_for(a, a->max_memory / 2, ws, a->nmonitors);
		a->mon = audit_wtrie_create(ws, a->nmonitors, a->monitor_cap);
		if (a->mon == NULL)
			goto fail;
	}
	return a;
fail:
	free(a);
	return NULL;
}

void audit_destroy(struct audit *a)
{
	if (a == NULL)
		return;
	audit_mtrie_release(&a->service);
	audit_xhash_release(&a->exact[0]);
	audit_xhash_release(&a->exact[1]);
	audit_hint_clear(a);
	for (unsigned l = 0; l < a->nlisteners; l++) {
		if (a->ltrie[l] != NULL)
			audit_mtrie_release(a->ltrie[l]);
		free(a->ltrie[l]);
	}
	free(a->ltrie);
	audit_wtrie_destroy(a->mon);
	for (size_t i = 0; i < a->nseries; i++)
		audit_wtrie_destroy(a->series[i].t);
	free(a);
}

/* ---- live gauge ---- */

bool audit_live_add(struct audit *a, const struct ip_addr *client, unsigned listener)
{
	uint32_t key[4];
	struct audit_mtrie *lt = NULL;
	unsigned bits = live_key(client, key);

	if (bits == 0)
		abort(); /* the server only accepts IPv4/IPv6 peers */
	if (listener >= AUDIT_LISTENERS_MAX)
		return false;
	if (listener >= a->nlisteners) {
		unsigned n = listener + 1;
		struct audit_mtrie **l = realloc(a->ltrie, n * sizeof *l);
		if (l == NULL)
			return false;
		memset(l + a->nlisteners, 0, (n - a->nlisteners) * sizeof *l);
		a->ltrie = l;
		a->nlisteners = n;
	}
	if (listener > 0) {
		if (a->ltrie[listener] == NULL) {
			lt = malloc(sizeof *lt);
			if (lt == NULL)
				return false;
			audit_mtrie_init(lt);
			a->ltrie[listener] = lt;
		}
		lt = a->ltrie[listener];
	}
	/* The hash slot loads while the trie is walked. Everything that may
	 * need memory is reserved first: out of memory changes no count. */
	unsigned v6 = bits == 128, nh = a->nhints[v6];
	uint32_t hkey[AUDIT_HINTS_MAX][4];
	audit_xhash_prefetch(&a->exact[v6], key);
	for (unsigned k = 0; k < nh; k++) {
		memcpy(hkey[k], key, sizeof key);
		audit_key_mask(hkey[k], a->hint_len[v6][k]);
		audit_xhash_prefetch(&a->hint[v6][k], hkey[k]);
	}
	if (!audit_mtrie_reserve(&a->service) || (lt != NULL && !audit_mtrie_reserve(lt)) ||
	    !audit_xhash_reserve(&a->exact[v6]))
		return false;
	for (unsigned k = 0; k < nh; k++)
		if (!audit_xhash_reserve(&a->hint[v6][k]))
			return false;
	if (!audit_mtrie_add(&a->service, key, bits))
		return false;
	if (lt != NULL && !audit_mtrie_add(lt, key, bits)) {
		audit_mtrie_remove(&a->service, key, bits);
		return false;
	}
	audit_xhash_add(&a->exact[v6], key, listener == 0);
	for (unsigned k = 0; k < nh; k++)
		audit_xhash_add(&a->hint[v6][k], hkey[k], false);
	return true;
}

void audit_live_remove(struct audit *a, const struct ip_addr *client, unsigned listener)
{
	uint32_t key[4];
	unsigned bits = live_key(client, key);

	if (listener >= a->nlisteners || bits == 0)
		abort(); /* remove without add */
	unsigned v6 = bits == 128;
	/* The pairing is checked before anything changes: by the listener's
	 * trie, or the hash's listener-0 count. The hash slot loads while the
	 * service trie's path is found (trusting the hash for the leaf). */
	audit_xhash_prefetch(&a->exact[v6], key);
	struct audit_mtrie *lt = listener > 0 ? a->ltrie[listener] : NULL;
	struct audit_mpath path;
	if (listener > 0 && (lt == NULL || !audit_mtrie_remove(lt, key, bits)))
		abort(); /* remove without add */
	if (!audit_mtrie_find(&a->service, key, bits, true, &path) ||
	    !audit_xhash_remove(&a->exact[v6], key, listener == 0))
		abort(); /* remove without add (or, after the listener's, a broken invariant) */
	audit_mtrie_apply_remove(&a->service, key, bits, &path);
	for (unsigned k = 0; k < a->nhints[v6]; k++) {
		uint32_t hk[4];
		memcpy(hk, key, sizeof hk);
		audit_key_mask(hk, a->hint_len[v6][k]);
		if (!audit_xhash_remove(&a->hint[v6][k], hk, false))
			abort(); /* the hint table lost a block: broken invariant */
	}
	if (lt != NULL && lt->total[0] + lt->total[1] == 0) {
		audit_mtrie_release(lt);
		free(lt);
		a->ltrie[listener] = NULL;
	}
}

uint64_t audit_live_count(const struct audit *a, const struct ip_addr *net,
                          unsigned prefix, int listener)
{
	uint32_t key[4];
	unsigned bits = live_key(net, key);

	if (bits == 0)
		return 0;
	if (listener != AUDIT_ANY_LISTENER &&
	    (listener < 0 || (unsigned)listener >= a->nlisteners))
		return 0;
	unsigned v6 = bits == 128;
	if (prefix > bits)
		return 0;
	audit_key_mask(key, prefix);
	if (listener > 0) {
		const struct audit_mtrie *lt = a->ltrie[listener];
		return lt ? audit_mtrie_count(lt, key, bits, prefix) : 0;
	}
	if (prefix == bits) /* one probe of the exact table */
		return audit_xhash_get(&a->exact[v6], key, listener == 0);
	if (listener == AUDIT_ANY_LISTENER)
		for (unsigned k = 0; k < a->nhints[v6]; k++)
			if (a->hint_len[v6][k] == prefix)
				return audit_xhash_get(&a->hint[v6][k], key, false);
	uint64_t sum = audit_mtrie_count(&a->service, key, bits, prefix);
	if (listener == 0) {
		/* The slower path: listener 0 is what the others leave. */
		for (unsigned l = 1; l < a->nlisteners; l++)
			if (a->ltrie[l] != NULL)
				sum -= audit_mtrie_count(a->ltrie[l], key, bits, prefix);
	}
	return sum;
}

struct hint_fill {
	struct audit_xhash *h;
	bool ok;
};

static void hint_visit(void *arg, const uint32_t key[4], uint64_t count)
{
	struct hint_fill *f = arg;
	if (f->ok && !audit_xhash_load(f->h, key, (uint32_t)count))
		f->ok = false;
}

bool audit_hint_prefix(struct audit *a, enum ip_family family, unsigned prefix)
{
	unsigned v6 = family == IP_V6, bits = v6 ? 128 : 32;

	if ((family != IP_V4 && family != IP_V6) || prefix > bits)
		return false;
	if (prefix == 0 || prefix == bits)
		return true; /* the family total and the exact table */
	for (unsigned k = 0; k < a->nhints[v6]; k++)
		if (a->hint_len[v6][k] == prefix)
			return true;
	if (a->nhints[v6] == AUDIT_HINTS_MAX)
		return false;
	struct audit_xhash *h = &a->hint[v6][a->nhints[v6]];
	audit_xhash_init(h, v6 ? 4 : 1);
	struct hint_fill f = {h, true};
	audit_mtrie_blocks(&a->service, bits, prefix, hint_visit, &f);
	if (!f.ok) {
		audit_xhash_release(h);
		return false;
	}
	a->hint_len[v6][a->nhints[v6]++] = prefix;
	return true;
}

void audit_hint_clear(struct audit *a)
{
	for (unsigned v6 = 0; v6 < 2; v6++) {
		for (unsigned k = 0; k < a->nhints[v6]; k++)
			audit_xhash_release(&a->hint[v6][k]);
		a->nhints[v6] = 0;
	}
}

/* ---- argument parsing ---- */

/* "N" of "/N": 1 to 3 decimal digits and nothing else. */
static bool parse_prefix_digits(const char *p, unsigned *out)
{
	unsigned n = 0;
	size_t i = 0;
	for (; p[i] >= '0' && p[i] <= '9'; i++) {
		if (i == 3)
			return false;
		n = n * 10 + (unsigned)(p[i] - '0');
	}
	if (i == 0 || p[i] != '\0')
		return false;
	*out = n;
	return true;
}

bool audit_parse_block(const char *arg, const struct ip_addr *current,
                       struct ip_addr *net, unsigned *prefix,
                       char *err, size_t errlen)
{
	char buf[72];

	if (arg == NULL || arg[0] == '\0' || arg[0] == '/') {
		unsigned n = 0;
		const char *text = arg ? arg : "";
		if (arg != NULL && arg[0] == '/' && !parse_prefix_digits(arg + 1, &n)) {
			set_err(err, errlen, "bad prefix \"%s\": want /N with N a number",
			        shown(text, buf));
			return false;
		}
		if (current == NULL || (current->family != IP_V4 && current->family != IP_V6)) {
			set_err(err, errlen, "\"%s\" names the current client, and there is none",
			        shown(text, buf));
			return false;
		}
		*net = norm(current);
		unsigned bits = ip_addr_bits(net);
		if (arg == NULL || arg[0] == '\0')
			n = bits;
		if (n > bits) {
			set_err(err, errlen, "bad prefix \"%s\": an %s client allows /0 to /%u",
			        shown(text, buf), bits == 32 ? "IPv4" : "IPv6", bits);
			return false;
		}
		ip_addr_mask(net, n);
		*prefix = n;
		return true;
	}
	if (!ip_block_parse(arg, net, prefix)) {
		set_err(err, errlen, "bad address block \"%s\"", shown(arg, buf));
		return false;
	}
	return true;
}

/* ---- windowed monitors and named series ---- */

void audit_record(struct audit *a, const struct ip_addr *client,
                  enum audit_counter counter, uint64_t now_ms)
{
	struct ip_addr c = norm(client);
	if (a->mon == NULL || (unsigned)counter >= AUDIT_COUNTER_COUNT ||
	    (c.family != IP_V4 && c.family != IP_V6))
		return;
	/* Out of memory loses this one event; the gauge is what fails closed. */
	(void)audit_wtrie_add(a->mon, &c, (unsigned)counter, 1, now_ms);
}

static bool block_ok(const struct ip_addr *net, unsigned prefix)
{
	return (net->family == IP_V4 || net->family == IP_V6) && prefix <= ip_addr_bits(net);
}

bool audit_sliding(struct audit *a, size_t monitor, enum audit_counter counter,
                   const struct ip_addr *net, unsigned prefix, uint64_t now_ms,
                   uint64_t *out)
{
	struct ip_addr n = norm(net);
	if (monitor >= a->nmonitors || (unsigned)counter >= AUDIT_COUNTER_COUNT ||
	    !block_ok(&n, prefix))
		return false;
	const struct audit_monitor_spec *m = &a->monitors[monitor];
	uint64_t wms = (uint64_t)m->window * 1000;
	uint64_t cur = audit_wtrie_window(a->mon, monitor, counter, &n, prefix, 0, now_ms);
	uint64_t prev = m->count > 1
	        ? audit_wtrie_window(a->mon, monitor, counter, &n, prefix, 1, now_ms) : 0;
	uint64_t left = wms - now_ms % wms; /* unelapsed part, in ms */
	/* prev * left / wms without overflow (left <= wms <= 1e9). */
	*out = cur + (prev / wms) * left + (prev % wms) * left / wms;
	return true;
}

int audit_monitor_find(const struct audit *a, unsigned window, unsigned count)
{
	for (size_t i = 0; i < a->nmonitors; i++)
		if (a->monitors[i].window == window && a->monitors[i].count == count)
			return (int)i;
	return -1;
}

bool audit_window_sum(struct audit *a, size_t monitor, enum audit_counter counter,
                      const struct ip_addr *net, unsigned prefix,
                      unsigned start, unsigned end, uint64_t now_ms, uint64_t *out)
{
	struct ip_addr n = norm(net);
	if (monitor >= a->nmonitors || (unsigned)counter >= AUDIT_COUNTER_COUNT ||
	    !block_ok(&n, prefix) || start > end || end >= a->monitors[monitor].count)
		return false;
	*out = audit_wtrie_sum(a->mon, monitor, counter, &n, prefix, start, end, now_ms);
	return true;
}

static bool series_shape_ok(unsigned window, unsigned count, char *err, size_t errlen)
{
	if (window == 0 || window > AUDIT_WINDOW_S_MAX || count == 0 ||
	    count > AUDIT_WINDOWS_MAX) {
		set_err(err, errlen, "bad series shape \"%u,%u\": want W in 1..%u, N in 1..%u",
		        window, count, AUDIT_WINDOW_S_MAX, AUDIT_WINDOWS_MAX);
		return false;
	}
	return true;
}

/* The series NAME, or NULL; err set when it exists with another shape. */
static struct audit_named *series_find(struct audit *a, const char *name,
                                       unsigned window, unsigned count,
                                       bool *mismatch, char *err, size_t errlen)
{
	char buf[72];
	*mismatch = false;
	for (size_t i = 0; i < a->nseries; i++) {
		struct audit_named *s = &a->series[i];
		if (strcmp(s->name, name) != 0)
			continue;
		if (s->window != window || s->count != count) {
			set_err(err, errlen, "series \"%s\" is \"%u,%u\", not \"%u,%u\"",
			        shown(name, buf), s->window, s->count, window, count);
			*mismatch = true;
			return NULL;
		}
		return s;
	}
	return NULL;
}

bool audit_series_add(struct audit *a, const char *name, unsigned window,
                      unsigned count, const struct ip_addr *client,
                      uint64_t amount, uint64_t now_ms, char *err, size_t errlen)
{
	char buf[72];
	bool mismatch;
	struct ip_addr c = norm(client);

	if (name == NULL || name[0] == '\0' || strlen(name) > AUDIT_SERIES_NAME_MAX) {
		set_err(err, errlen, "bad series name \"%s\": 1 to %d bytes",
		        shown(name ? name : "", buf), AUDIT_SERIES_NAME_MAX);
		return false;
	}
	if (!series_shape_ok(window, count, err, errlen))
		return false;
	if (c.family != IP_V4 && c.family != IP_V6) {
		set_err(err, errlen, "series \"%s\": no client address", shown(name, buf));
		return false;
	}
	struct audit_named *s = series_find(a, name, window, count, &mismatch, err, errlen);
	if (mismatch)
		return false;
	if (s == NULL) {
		if (a->nseries == AUDIT_SERIES_MAX) {
			set_err(err, errlen, "series \"%s\": at most %d named series",
			        shown(name, buf), AUDIT_SERIES_MAX);
			return false;
		}
		struct audit_wseries ws = {.window_s = window, .nwin = count, .ncounters = 1};
		struct audit_wtrie *t =
			audit_wtrie_create(&ws, 1, cap_for(a, a->max_memory / 64, &ws, 1));
		if (t == NULL) {
			set_err(err, errlen, "series \"%s\": out of memory", shown(name, buf));
			return false;
		}
		s = &a->series[a->nseries++];
		memcpy(s->name, name, strlen(name) + 1);
		s->window = window;
		s->count = count;
		s->t = t;
	}
	if (!audit_wtrie_add(s->t, &c, 0, amount, now_ms)) {
		set_err(err, errlen, "series \"%s\": out of memory", shown(name, buf));
		return false;
	}
	return true;
}

bool audit_series_sum(struct audit *a, const char *name, unsigned window,
                      unsigned count, const struct ip_addr *net, unsigned prefix,
                      unsigned start, unsigned end, uint64_t now_ms,
                      uint64_t *out, char *err, size_t errlen)
{
	bool mismatch;
	struct ip_addr n = norm(net);

	if (!series_shape_ok(window, count, err, errlen))
		return false;
	if (start > end || end >= count) {
		set_err(err, errlen, "bad window range %u..%u for \"%u,%u\"", start, end,
		        window, count);
		return false;
	}
	if (!block_ok(&n, prefix)) {
		set_err(err, errlen, "bad block prefix /%u", prefix);
		return false;
	}
	struct audit_named *s = series_find(a, name ? name : "", window, count,
	                                    &mismatch, err, errlen);
	if (mismatch)
		return false;
	*out = s ? audit_wtrie_sum(s->t, 0, 0, &n, prefix, start, end, now_ms) : 0;
	return true;
}

void audit_tick(struct audit *a, uint64_t now_ms)
{
	unsigned budget = AUDIT_TICK_BUDGET;
	size_t ntries = 1 + a->nseries; /* slot 0: monitors */

	/* Round-robin, so that one busy series cannot starve the others. */
	for (size_t k = 0; k < ntries && budget > 0; k++) {
		size_t i = (a->tick_next + k) % ntries;
		struct audit_wtrie *t = i == 0 ? a->mon : a->series[i - 1].t;
		if (t != NULL)
			budget -= audit_wtrie_expire(t, now_ms, budget);
	}
	a->tick_next = (a->tick_next + 1) % ntries;
}

void audit_get_stats(const struct audit *a, struct audit_stats *out)
{
	static const struct ip_addr any4 = {.family = IP_V4}, any6 = {.family = IP_V6};
	memset(out, 0, sizeof *out);
	out->live_sessions = audit_live_count(a, &any4, 0, AUDIT_ANY_LISTENER) +
	                     audit_live_count(a, &any6, 0, AUDIT_ANY_LISTENER);
	out->live_addresses = a->service.addrs;
	out->bytes = sizeof *a + audit_mtrie_bytes(&a->service) +
	             audit_xhash_bytes(&a->exact[0]) + audit_xhash_bytes(&a->exact[1]) +
	             a->nlisteners * sizeof *a->ltrie;
	for (unsigned v6 = 0; v6 < 2; v6++)
		for (unsigned k = 0; k < a->nhints[v6]; k++)
			out->bytes += audit_xhash_bytes(&a->hint[v6][k]);
	for (unsigned l = 0; l < a->nlisteners; l++)
		if (a->ltrie[l] != NULL)
			out->bytes += sizeof *a->ltrie[l] + audit_mtrie_bytes(a->ltrie[l]);
	out->monitor_cap = a->mon ? a->monitor_cap : 0;
	if (a->mon) {
		out->tracked_addresses += audit_wtrie_tracked(a->mon);
		out->evictions += audit_wtrie_evictions(a->mon);
		out->bytes += audit_wtrie_bytes(a->mon);
	}
	for (size_t i = 0; i < a->nseries; i++) {
		out->tracked_addresses += audit_wtrie_tracked(a->series[i].t);
		out->evictions += audit_wtrie_evictions(a->series[i].t);
		out->bytes += audit_wtrie_bytes(a->series[i].t);
	}
}

/* ---- console text ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

static char *sb_finish(struct sbuf *b, char *err, size_t errlen)
{
	if (b->oom) {
		free(b->s);
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (b->s == NULL)
		return calloc(1, 1);
	return b->s;
}

char *audit_format_show(struct audit *a, const char *arg, uint64_t now_ms,
                        char *err, size_t errlen)
{
	struct ip_addr net;
	unsigned prefix;
	struct sbuf b = {0};

	if (!audit_parse_block(arg ? arg : "", NULL, &net, &prefix, err, errlen))
		return NULL;
	for (size_t m = 0; m < a->nmonitors; m++)
		for (unsigned c = 0; c < AUDIT_COUNTER_COUNT; c++)
			for (unsigned w = 0; w < a->monitors[m].count; w++)
				sb_printf(&b, "%s %u/%u: %" PRIu64 "\n", counter_names[c],
				          a->monitors[m].window, w,
				          audit_wtrie_window(a->mon, m, c, &net, prefix, w, now_ms));
	for (size_t i = 0; i < a->nseries; i++)
		for (unsigned w = 0; w < a->series[i].count; w++)
			sb_printf(&b, "%s %u/%u: %" PRIu64 "\n", a->series[i].name,
			          a->series[i].window, w,
			          audit_wtrie_window(a->series[i].t, 0, 0, &net, prefix, w, now_ms));
	sb_printf(&b, "Live connections: %" PRIu64 "\n",
	          audit_live_count(a, &net, prefix, AUDIT_ANY_LISTENER));
	return sb_finish(&b, err, errlen);
}

struct top_entry {
	uint32_t key[4];
	uint64_t count;
	uint8_t v6;
};

struct top_heap {
	struct top_entry *e;
	size_t n, cap;
	uint8_t v6; /* family being visited */
};

/* True when x ranks below y: fewer sessions, or as many and a higher
 * address (IPv6 after IPv4), so the order is total and the output stable. */
static bool top_worse(const struct top_entry *x, const struct top_entry *y)
{
	if (x->count != y->count)
		return x->count < y->count;
	if (x->v6 != y->v6)
		return x->v6 > y->v6;
	for (unsigned w = 0; w < 4; w++)
		if (x->key[w] != y->key[w])
			return x->key[w] > y->key[w];
	return false;
}

static void top_sift_down(struct top_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && top_worse(&h->e[l], &h->e[m]))
			m = l;
		if (r < h->n && top_worse(&h->e[r], &h->e[m]))
			m = r;
		if (m == i)
			return;
		struct top_entry t = h->e[i];
		h->e[i] = h->e[m];
		h->e[m] = t;
		i = m;
	}
}

static void top_visit(void *arg, const uint32_t key[4], uint64_t count)
{
	struct top_heap *h = arg;
	struct top_entry x = {.count = count, .v6 = h->v6};
	memcpy(x.key, key, sizeof x.key);
	if (h->n < h->cap) {
		size_t i = h->n++;
		h->e[i] = x;
		while (i > 0 && top_worse(&h->e[i], &h->e[(i - 1) / 2])) {
			struct top_entry t = h->e[i];
			h->e[i] = h->e[(i - 1) / 2];
			h->e[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (top_worse(&h->e[0], &x)) {
		h->e[0] = x;
		top_sift_down(h, 0);
	}
}

static int top_cmp(const void *x, const void *y)
{
	const struct top_entry *a = x, *b = y;
	return top_worse(a, b) ? 1 : top_worse(b, a) ? -1 : 0;
}

char *audit_format_top(struct audit *a, unsigned n, const char *mask,
                       char *err, size_t errlen)
{
	char buf[72];
	unsigned p4 = 32, p6 = 128;
	bool do4 = true, do6 = true;

	if (mask != NULL && mask[0] != '\0') {
		const char *p = mask;
		unsigned v;
		if (strncmp(p, "v4", 2) == 0 || strncmp(p, "v6", 2) == 0) {
			do4 = p[1] == '4';
			do6 = !do4;
			p += 2;
		}
		if (*p == '/')
			p++;
		if (!parse_prefix_digits(p, &v) || v > 128 || (do4 && !do6 && v > 32)) {
			set_err(err, errlen, "bad mask \"%s\": want /N (N <= 32 IPv4, "
			        "N > 32 IPv6), v4/N or v6/N", shown(mask, buf));
			return NULL;
		}
		if (do4 && do6) {
			/* A bare /N: IPv4 masks are 0..32, longer ones IPv6. */
			do4 = v <= 32;
			do6 = v > 32;
		}
		p4 = p6 = v;
	}
	if (n > AUDIT_TOP_MAX)
		n = AUDIT_TOP_MAX;
	struct top_heap h = {.cap = n};
	struct sbuf b = {0};
	if (n > 0) {
		h.e = malloc(n * sizeof *h.e);
		if (h.e == NULL) {
			set_err(err, errlen, "out of memory");
			return NULL;
		}
		if (do4) {
			h.v6 = 0;
			audit_mtrie_blocks(&a->service, 32, p4, top_visit, &h);
		}
		if (do6) {
			h.v6 = 1;
			audit_mtrie_blocks(&a->service, 128, p6, top_visit, &h);
		}
		qsort(h.e, h.n, sizeof *h.e, top_cmp);
	}
	for (size_t i = 0; i < h.n; i++) {
		struct ip_addr ad;
		char text[IP_ADDR_TEXT_MAX];
		audit_key_to(h.e[i].key, h.e[i].v6 ? IP_V6 : IP_V4, &ad);
		sb_printf(&b, "%s/%u %" PRIu64 "\n", ip_addr_format(&ad, text, sizeof text),
		          h.e[i].v6 ? p6 : p4, h.e[i].count);
	}
	free(h.e);
	return sb_finish(&b, err, errlen);
}
