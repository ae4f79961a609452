/*
 * smtp_policy: the policy hook. See smtp_policy.h. Until the Sieve engine
 * is wired here, every phase completes at once with no verdict.
 */
#include "smtp/smtp_policy.h"

#include <stdlib.h>
#include <string.h>

void smtp_policy_run(struct smtp_session *s, enum mx_phase phase, smtp_policy_done_fn done)
{
	struct smtp_verdict v;

	(void)phase;
	memset(&v, 0, sizeof v);
	done(s, &v);
}

void smtp_policy_cancel(struct smtp_session *s)
{
	(void)s;
}

void smtp_verdict_clear(struct smtp_verdict *v)
{
	free(v->text);
	memset(v, 0, sizeof *v);
}
