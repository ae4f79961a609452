/* metrics: Prometheus text for the running server (see metrics.h). */
#include "daemon/metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "audit/audit.h"
#include "daemon/server.h"
#include "daemon/version.h"
#include "deliver/deliver.h"
#include "policy/policy.h"

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	family(f, name, type, help);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* Length of the well-formed UTF-8 character at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t len = p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
	           : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
	    (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
		return 0;
	return len;
}

/* A label value: \, " and newline escaped, as the format requires, and
 * valid UTF-8 (a counter named after a client's EHLO can hold any bytes,
 * and one bad byte makes Prometheus refuse the whole scrape): a byte that
 * starts no well-formed character becomes the text \xHH (its backslash
 * escaped), so two names that differ only there stay two series. */
static void label(FILE *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t c = utf8_char((const unsigned char *)p + i, n - i);
		if (c == 0) { /* shown as the text \xHH: names stay distinct */
			fprintf(f, "\\\\x%02X", (unsigned char)p[i]);
			i++;
		} else if (p[i] == '\\' || p[i] == '"') {
			fprintf(f, "\\%c", p[i]);
			i++;
		} else if (p[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else {
			fwrite(p + i, 1, c, f);
			i += c;
		}
	}
}

static void sieve_counter(void *arg, const char *phase, size_t phase_len, const char *name,
                          size_t name_len, const char *cls, size_t cls_len, uint64_t n)
{
	FILE *f = arg;
	fputs("mxsieve_sieve_counter_total{phase=\"", f);
	label(f, phase, phase_len);
	fputs("\",name=\"", f);
	label(f, name, name_len);
	fputs("\",class=\"", f);
	label(f, cls, cls_len);
	fprintf(f, "\"} %llu\n", (unsigned long long)n);
}

static void delivery(FILE *f, struct deliver *d)
{
	struct deliver_stats ds;
	static const char *const result[DELIVER_NSTATUS] = {
		[DELIVER_OK] = "ok", [DELIVER_TEMPFAIL] = "tempfail", [DELIVER_PERMFAIL] = "permfail",
	};

	deliver_get_stats(d, &ds);
	family(f, "mxsieve_delivery_jobs_total", "counter",
	       "Messages delivery finished, by result (ok: durable in the Maildir or "
	       "accepted by the next hop).");
	uint64_t finished = 0;
	for (int i = 0; i < DELIVER_NSTATUS; i++) {
		fprintf(f, "mxsieve_delivery_jobs_total{result=\"%s\"} %llu\n", result[i],
		        (unsigned long long)ds.finished[i]);
		finished += ds.finished[i];
	}
	one(f, "mxsieve_delivery_queue", "gauge",
	    "Messages handed to delivery and not finished yet.", ds.submitted - finished);
	one(f, "mxsieve_delivery_rounds_total", "counter",
	    "Delivery rounds: group commits (one spool fdatasync each) or relay batches.",
	    ds.rounds);
	family(f, "mxsieve_delivery_seconds", "histogram",
	       "Time from the final dot to a durable message (or a failure), per message.");
	uint64_t cum = 0;
	for (int b = 0; b < DELIVER_LAT_BOUNDS; b++) {
		cum += ds.lat_buckets[b];
		fprintf(f, "mxsieve_delivery_seconds_bucket{le=\"%g\"} %llu\n", deliver_lat_bounds_s[b],
		        (unsigned long long)cum);
	}
	cum += ds.lat_buckets[DELIVER_LAT_BOUNDS];
	fprintf(f, "mxsieve_delivery_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	fprintf(f, "mxsieve_delivery_seconds_sum %.6f\n", ds.lat_sum_s);
	fprintf(f, "mxsieve_delivery_seconds_count %llu\n", (unsigned long long)cum);
	if (!ds.spool)
		return;
	one(f, "mxsieve_spool_pinned_segments", "gauge",
	    "Spool segments holding messages answered 250 that are not all in their mailboxes "
	    "yet (placed again with a growing wait); above 0 for long: look at the log.",
	    ds.spool_pinned);
	one(f, "mxsieve_spool_checkpoints_total", "counter",
	    "Spool segments whose Maildir files were synced and that were marked clean.",
	    ds.checkpoints);
	family(f, "mxsieve_spool_retries_total", "counter",
	       "Attempts to place a pinned segment's messages again, by result.");
	fprintf(f, "mxsieve_spool_retries_total{result=\"ok\"} %llu\n",
	        (unsigned long long)ds.retries_ok);
	fprintf(f, "mxsieve_spool_retries_total{result=\"failed\"} %llu\n",
	        (unsigned long long)ds.retries_failed);
}

char *mx_metrics_render(void *arg)
{
	struct mx_server *srv = arg;
	const struct smtp_stats *st = &srv->smtp.stats;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	family(f, "mxsieve_build_info", "gauge", "The running version.");
	fprintf(f, "mxsieve_build_info{version=\"%s\"} 1\n", MXSIEVE_VERSION);
	one(f, "mxsieve_start_time_seconds", "gauge", "When the server started, Unix time.",
	    (uint64_t)srv->started);
	one(f, "mxsieve_sessions", "gauge", "SMTP sessions open now.", srv->smtp.nsessions);
	one(f, "mxsieve_sessions_tarpitted", "gauge", "Sessions waiting in a policy tarpit now.",
	    st->tarpitted_now);
	one(f, "mxsieve_connections_total", "counter", "Sessions accepted.", st->connections);
	one(f, "mxsieve_connections_refused_total", "counter",
	    "Connections refused with 421 at Listener_Sessions or Service_Sessions.",
	    st->cap_refused);
	one(f, "mxsieve_proxy_errors_total", "counter", "Connections with a bad or missing PROXY header.",
	    st->proxy_errors);
	one(f, "mxsieve_early_talkers_total", "counter", "Clients that sent before the banner.",
	    st->early_talkers);
	one(f, "mxsieve_tls_handshakes_total", "counter", "STARTTLS handshakes completed.", st->tls);
	one(f, "mxsieve_messages_accepted_total", "counter", "Messages answered 250 at end of data.",
	    st->messages);
	one(f, "mxsieve_messages_refused_total", "counter", "Messages refused at end of data.",
	    st->refused);
	family(f, "mxsieve_recipients_refused_total", "counter",
	       "RCPT refused before the policy: relaying denied (5.7.1), or a mailbox not in "
	       "Valid_Recipients (5.1.1).");
	fprintf(f, "mxsieve_recipients_refused_total{reason=\"relay\"} %llu\n",
	        (unsigned long long)st->relay_denied);
	fprintf(f, "mxsieve_recipients_refused_total{reason=\"unknown\"} %llu\n",
	        (unsigned long long)st->unknown_rcpts);
	one(f, "mxsieve_storage_refused_total", "counter",
	    "452 4.3.1: MAIL refused under Min_Free_Space, or a message refused because the "
	    "Maildir filesystem was full.",
	    st->storage_refused);
	one(f, "mxsieve_next_hop_refused_total", "counter",
	    "451 4.4.1: MAIL refused while the relay next hop was down (Delivery = relay).",
	    st->next_hop_refused);
	uint64_t free_bytes, free_inodes;
	if (srv->smtp.deliver && deliver_free_space(srv->smtp.deliver, &free_bytes, &free_inodes)) {
		one(f, "mxsieve_maildir_free_bytes", "gauge",
		    "Bytes available under the Maildir root (statvfs, read at most once a second "
		    "when a MAIL comes).",
		    free_bytes);
		one(f, "mxsieve_maildir_free_inodes", "gauge",
		    "Inodes available under the Maildir root (each message is a file).", free_inodes);
	}
	one(f, "mxsieve_tarpits_total", "counter", "Replies delayed by a policy tarpit.", st->tarpits);
	one(f, "mxsieve_policy_runs_total", "counter", "Policy scripts run.", st->policy_runs);
	one(f, "mxsieve_policy_errors_total", "counter", "Policy runs that ended in a runtime error.",
	    st->policy_errors);
	if (srv->smtp.policy_stats) {
		family(f, "mxsieve_sieve_counter_total", "counter",
		       "Sieve action counters (what `sieve stats` prints), by phase, name and class.");
		policy_stats_each(srv->smtp.policy_stats, sieve_counter, f);
	}
	if (srv->smtp.audit) {
		struct audit_stats as;
		audit_get_stats(srv->smtp.audit, &as);
		one(f, "mxsieve_audit_live_addresses", "gauge",
		    "Distinct client addresses with sessions open.", as.live_addresses);
		one(f, "mxsieve_audit_tracked_addresses", "gauge",
		    "Entries with windowed data (an address once for the monitors and once per "
		    "named series it is in).",
		    as.tracked_addresses);
		one(f, "mxsieve_audit_evictions_total", "counter",
		    "Windowed entries evicted at the cap (max_tracked or max_memory).", as.evictions);
		one(f, "mxsieve_audit_monitor_cap", "gauge",
		    "Addresses the monitors keep at most (max_tracked, or less under max_memory).",
		    as.monitor_cap);
		one(f, "mxsieve_audit_bytes", "gauge", "Memory held by inbound_audit.", as.bytes);
	}
	if (srv->smtp.deliver)
		delivery(f, srv->smtp.deliver);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
