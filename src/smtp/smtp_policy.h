/*
 * smtp_policy: the one asynchronous hook through which the session asks
 * the policy what to answer at each phase.
 *
 * At connect (after the session is counted in audit, before the banner),
 * after EHLO/HELO, MAIL, RCPT (before their replies) and at end of data
 * (before delivery and the reply), the session calls smtp_policy_run() and
 * then processes no further input until `done` is called, now or later
 * (a DNS lookup, a script). The verdict says what to answer; the session
 * applies it: it waits `tarpit` seconds on a timer (costing nothing else),
 * sends the verdict's reply instead of the default one, closes afterwards
 * when asked, and at end of data answers 250 without delivering on discard.
 *
 * A phase with no script completes at once with "no verdict" (code 0),
 * and the session sends its default reply.
 */
#ifndef MX_SMTP_SMTP_POLICY_H
#define MX_SMTP_SMTP_POLICY_H

#include <stdbool.h>

#include "conf/config.h"

struct smtp_session;

struct smtp_verdict {
	unsigned code;        /* 0: no verdict, the default reply; else 2xx-5xx */
	char status[16];      /* enhanced status "5.7.1"; "" = derived from code */
	char *text;           /* malloc'd; lines split on '\n'; NULL = default text */
	unsigned tarpit;      /* seconds to wait before the reply */
	bool disconnect;      /* close after the reply */
	bool discard;         /* data phase: answer 250, deliver nothing */
};

/* Called exactly once per run, on the event-loop thread, unless the run
 * was cancelled. The session takes ownership of v->text. */
typedef void (*smtp_policy_done_fn)(struct smtp_session *s, struct smtp_verdict *v);

/* Run the policy of `phase` for session s. */
void smtp_policy_run(struct smtp_session *s, enum mx_phase phase, smtp_policy_done_fn done);

/* The session is going away: forget any run in flight (done is not called)
 * and free the session's policy state (its context stores). */
void smtp_policy_cancel(struct smtp_session *s);

/* The transaction ended: clear the per-message context (vctx_mess). */
void smtp_policy_message_end(struct smtp_session *s);

/* Free what a verdict owns and zero it. */
void smtp_verdict_clear(struct smtp_verdict *v);

#endif
