/* recipients: the Valid_Recipients file, the addresses we have mailboxes for.
 *
 * One entry per line: "local@domain" (one address) or "@domain" (every
 * local part of that domain), optionally followed by blanks and alias
 * targets, "a@d, b@d": mail for the entry goes into those mailboxes instead
 * of its own (one level: a target's own entry is not looked at). A line
 * whose first non-blank byte is '#' is a comment ('#' is a local-part
 * character elsewhere), blank lines are ignored. Entries and targets are
 * stored canonical (mx_local_canonical, the function the SMTP side applies
 * to RCPT TO): quoted only when they need the quotes. Matching is ASCII
 * case-insensitive in both parts, as the Maildir folder names are
 * (deliver.h). The set is read once per configuration load
 * and is immutable after: sessions share it through their config. */
#ifndef MX_CONF_RECIPIENTS_H
#define MX_CONF_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>

struct conf_errors;
struct mx_recipients;

/* Domain check for an entry: true when the domain is one we accept mail for. */
typedef bool (*mx_recipients_domain_fn)(const char *domain, void *arg);

struct mx_recipients_opts {
	mx_recipients_domain_fn accepts; /* every entry's and target's domain */
	void *arg;
	bool aliases; /* targets allowed (Delivery = "maildir"; a relay's next
	               * hop has aliases of its own) */
};

/* Read PATH. Each bad line adds "PATH:LINE: message" to errs; a file that
 * cannot be read adds "CONF:LINE: ..." naming the option's line in the
 * config file CONF. Returns NULL when anything was wrong. */
struct mx_recipients *mx_recipients_load(const char *path, const char *conf, unsigned line,
                                         const struct mx_recipients_opts *o,
                                         struct conf_errors *errs);

/* Whether local@domain is listed, or its domain has an "@domain" entry
 * (the address's own entry first). local is the canonical local part
 * (mx_local_canonical), domain without a trailing dot. *targets (when
 * not NULL) gets the entry's alias targets, "a@d,b@d" in lower case, or
 * NULL for a mailbox of its own; valid as long as r. */
bool mx_recipients_lookup(const struct mx_recipients *r, const char *local, const char *domain,
                          const char **targets);
bool mx_recipients_has(const struct mx_recipients *r, const char *local, const char *domain);

/* Entries read: addresses and whole domains. */
size_t mx_recipients_count(const struct mx_recipients *r);

void mx_recipients_free(struct mx_recipients *r);

#endif
