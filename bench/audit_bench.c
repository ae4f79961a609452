/*
 * audit_bench: cost of the live gauge (connect = audit_live_add, disconnect
 * = audit_live_remove, query = audit_live_count at several prefixes) with
 * 1 thousand, 100 thousand and 1 million distinct client addresses, and the
 * same operations on a naive reference (a flat array of sessions, scanned)
 * in the same run.
 *
 *   build/bench/audit_bench            full run
 *   build/bench/audit_bench --quick    CI smoke run (small sizes, < 5 s)
 *   build/bench/audit_bench --size 1000000 --family 6   one size, one family
 *   build/bench/audit_bench --hint     with IPv4 /24 /27 and IPv6 /64 /93
 *                                      hinted (audit_hint_prefix)
 *
 * Each figure is the median over batches of BATCH operations of the batch's
 * time / BATCH. Addresses: IPv4 spread over the whole space; IPv6 inside
 * 2001:db8::/32 with random /48, /64 and interface bits. One session per
 * address, listener 0. Bytes per address are the module's own accounting
 * (audit_get_stats) and the RSS growth, both divided by the address count.
 */
#include "audit/audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000

static uint64_t rng = 0x1234567887654321ULL;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * 4;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_d);
	return n ? v[n / 2] : 0;
}

/* N distinct addresses: i -> an odd multiplier is a bijection mod 2^32 (and
 * mod 2^64), so no two are equal. */
static void make_addrs(struct ip_addr *v, size_t n, bool v6)
{
	for (size_t i = 0; i < n; i++) {
		memset(&v[i], 0, sizeof v[i]);
		if (!v6) {
			uint32_t x = (uint32_t)(i * 2654435761u + 12345u);
			v[i].family = IP_V4;
			for (int b = 0; b < 4; b++)
				v[i].bytes[b] = (uint8_t)(x >> (24 - 8 * b));
		} else {
			uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 777;
			uint64_t r = rnd();
			v[i].family = IP_V6;
			v[i].bytes[0] = 0x20, v[i].bytes[1] = 0x01, v[i].bytes[2] = 0x0d,
			v[i].bytes[3] = 0xb8;
			v[i].bytes[4] = (uint8_t)(r >> 8) & 0x0f; /* 16 /48s ... */
			v[i].bytes[5] = (uint8_t)(r >> 16);
			v[i].bytes[6] = 0, v[i].bytes[7] = (uint8_t)(r >> 24) & 0x3; /* few /64s each */
			for (int b = 0; b < 8; b++)
				v[i].bytes[8 + b] = (uint8_t)(x >> (56 - 8 * b));
		}
	}
}

static void shuffle(size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(rnd() % i);
		size_t t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}

/* ---- the naive reference ---- */
struct naive {
	struct ip_addr *s;
	size_t n;
};

static uint64_t naive_count(const struct naive *nv, const struct ip_addr *net, unsigned p)
{
	uint64_t c = 0;
	for (size_t i = 0; i < nv->n; i++)
		c += ip_addr_in_block(&nv->s[i], net, p);
	return c;
}

static void naive_remove(struct naive *nv, const struct ip_addr *a)
{
	for (size_t i = 0; i < nv->n; i++)
		if (ip_addr_equal(&nv->s[i], a)) {
			nv->s[i] = nv->s[--nv->n];
			return;
		}
}

static volatile uint64_t sink;
static bool hint; /* --hint: hint IPv4 /24 /27 and IPv6 /64 /93 */

static void run(size_t n, bool v6, bool quick)
{
	/* The four reported lengths, then four odd ones (sub-stride sums,
	 * compressed edges), printed on a second line. */
	static const unsigned p4[] = {32, 24, 16, 0, 27, 20, 9, 1},
	                      p6[] = {128, 64, 48, 0, 93, 60, 36, 3};
	const unsigned *pl = v6 ? p6 : p4;
	struct ip_addr *v = malloc(n * sizeof *v);
	size_t *order = malloc(n * sizeof *order);
	size_t nb = (n + BATCH - 1) / BATCH, nqb = quick ? 20 : 100;
	double *t = malloc((nb > nqb ? nb : nqb) * sizeof *t);
	struct audit *a = audit_create(NULL);
	struct audit_stats st;
	if (hint && !(audit_hint_prefix(a, IP_V4, 24) && audit_hint_prefix(a, IP_V4, 27) &&
	              audit_hint_prefix(a, IP_V6, 64) && audit_hint_prefix(a, IP_V6, 93)))
		abort();
	char line[512];
	int len = 0;

	make_addrs(v, n, v6);
	shuffle(order, n);
	long rss0 = rss_kb();
	/* connect. Each batch's addresses are copied out first (as for the
	 * queries): a session holds its client address in hand, so the
	 * bench's own random read of v[] is not the gauge's cost. */
	struct ip_addr *ba = malloc(BATCH * sizeof *ba);
	for (size_t b = 0; b < nb; b++) {
		size_t lo = b * BATCH, hi = lo + BATCH < n ? lo + BATCH : n;
		for (size_t i = lo; i < hi; i++)
			ba[i - lo] = v[order[i]];
		double t0 = now_ns();
		for (size_t i = 0; i < hi - lo; i++)
			if (!audit_live_add(a, &ba[i], 0))
				abort();
		t[b] = (now_ns() - t0) / (double)(hi - lo);
	}
	double add_ns = median(t, nb);
	long rss1 = rss_kb();
	audit_get_stats(a, &st);
	len += snprintf(line + len, sizeof line - len, "%-4s %8zu  mx: add %6.1f", v6 ? "IPv6" : "IPv4",
	                n, add_ns);
	/* queries, addresses in random order */
	double q[8];
	char odd[160];
	int olen = 0;
	for (int k = 0; k < 8; k++) {
		for (size_t b = 0; b < nqb; b++) {
			struct ip_addr qs[BATCH];
			for (size_t i = 0; i < BATCH; i++) {
				qs[i] = v[rnd() % n];
				ip_addr_mask(&qs[i], pl[k]);
			}
			uint64_t s = 0;
			double t0 = now_ns();
			for (size_t i = 0; i < BATCH; i++)
				s += audit_live_count(a, &qs[i], pl[k], AUDIT_ANY_LISTENER);
			t[b] = (now_ns() - t0) / BATCH;
			sink += s;
		}
		q[k] = median(t, nqb);
		if (k < 4)
			len += snprintf(line + len, sizeof line - len, "  /%u %5.1f", pl[k], q[k]);
		else
			olen += snprintf(odd + olen, sizeof odd - olen, "  /%u %5.1f", pl[k], q[k]);
	}
	/* disconnect, in another random order */
	shuffle(order, n);
	for (size_t b = 0; b < nb; b++) {
		size_t lo = b * BATCH, hi = lo + BATCH < n ? lo + BATCH : n;
		for (size_t i = lo; i < hi; i++)
			ba[i - lo] = v[order[i]];
		double t0 = now_ns();
		for (size_t i = 0; i < hi - lo; i++)
			audit_live_remove(a, &ba[i], 0);
		t[b] = (now_ns() - t0) / (double)(hi - lo);
	}
	free(ba);
	double rm_ns = median(t, nb);
	struct audit_stats after;
	audit_get_stats(a, &after);
	printf("%s  remove %6.1f ns | bytes/addr %.1f (module) %.1f (RSS) | after close %" PRIu64
	       " B\n", line, rm_ns, (double)st.bytes / n, (rss1 - rss0) * 1024.0 / n, after.bytes);
	printf("%-4s %8zu  mx: other prefixes%s ns\n", v6 ? "IPv6" : "IPv4", n, odd);
	audit_destroy(a);

	/* The naive list: append, scan, find-and-swap. At large sizes a scan
	 * is O(n), so fewer operations are sampled there. */
	struct naive nv = {malloc(n * sizeof *nv.s), 0};
	size_t samples = n >= 1000000 ? 20 : n >= 100000 ? 200 : 2000;
	if (quick && samples > 200)
		samples = 200;
	double t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		nv.s[nv.n++] = v[order[i]];
	double nadd = (now_ns() - t0) / n;
	len = snprintf(line, sizeof line, "%-4s %8zu  naive: add %6.1f", v6 ? "IPv6" : "IPv4", n,
	               nadd);
	for (int k = 0; k < 4; k++) {
		uint64_t s = 0;
		t0 = now_ns();
		for (size_t i = 0; i < samples; i++) {
			struct ip_addr qa = v[rnd() % n];
			ip_addr_mask(&qa, pl[k]);
			s += naive_count(&nv, &qa, pl[k]);
		}
		sink += s;
		len += snprintf(line + len, sizeof line - len, "  /%u %9.0f", pl[k],
		                (now_ns() - t0) / samples);
	}
	t0 = now_ns();
	for (size_t i = 0; i < samples; i++)
		naive_remove(&nv, &v[order[i]]);
	printf("%s  remove %9.0f ns (%zu sampled queries/removes per figure)\n", line,
	       (now_ns() - t0) / samples, samples);
	free(nv.s);
	free(v);
	free(order);
	free(t);
}

int main(int argc, char **argv)
{
	bool quick = false;
	int family = 0; /* 0: both */
	size_t only = 0;
	static const size_t full[] = {1000, 100000, 1000000}, small[] = {1000, 10000};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = true;
		else if (strcmp(argv[i], "--hint") == 0)
			hint = true;
		else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			only = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--family") == 0 && i + 1 < argc)
			family = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: audit_bench [--quick] [--hint] [--size N] "
			        "[--family 4|6]\n");
			return 2;
		}
	}
	const size_t *sizes = only ? &only : quick ? small : full;
	size_t nsizes = only ? 1 : quick ? 2 : 3;

	printf("audit_bench%s%s: ns per operation, median of %d-op batches\n",
	       quick ? " --quick" : "", hint ? " --hint" : "", BATCH);
	for (size_t i = 0; i < nsizes; i++) {
		if (family != 6)
			run(sizes[i], false, quick);
		if (family != 4)
			run(sizes[i], true, quick);
	}
	return 0;
}
