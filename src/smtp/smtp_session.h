/*
 * smtp_session: one SMTP conversation (RFC 5321) on a libevent bufferevent.
 *
 * A state machine in OpenSMTPD's manner: a table of commands {verb, check,
 * proceed}; one enter_state() that logs every transition at debug level;
 * the socket layer hands semantic events (data in, drained, timeout, error)
 * to one switch; one exit path (session_free) releases everything, and it
 * is the only place that calls audit_live_remove().
 *
 * Extensions: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152),
 * ENHANCEDSTATUSCODES (2034, codes from 3463), STARTTLS (3207), SMTPUTF8
 * (6531), CHUNKING (3030). Input is parsed in place from the input
 * evbuffer, several commands per read, and replies go out in order; while
 * a policy run or a delivery is pending nothing more is parsed, so a
 * pipelined batch is answered in order whatever the read boundaries.
 *
 * Memory: the session struct is small; the transaction (envelope, message
 * buffer) exists only between MAIL and the end of the transaction.
 */
#ifndef MX_SMTP_SMTP_SESSION_H
#define MX_SMTP_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/ipaddr.h"

struct bufferevent;
struct net_listener;
struct smtp_server;
struct smtp_session;

/* A socket accepted on listener l (the daemon's evconnlistener callback). */
void smtp_session_accept(struct smtp_server *srv, struct net_listener *l, int fd,
                         const struct sockaddr *sa, int socklen);

/* Start a session on an existing bufferevent (takes ownership), e.g. one end
 * of a bufferevent pair in tests. `listener` may be NULL; `proxy` requires a
 * PROXY header first. Returns NULL when refused (cap, out of memory); the
 * bufferevent is then freed. */
struct smtp_session *smtp_session_start(struct smtp_server *srv, struct bufferevent *bev,
                                        struct net_listener *listener,
                                        const struct ip_addr *client, uint16_t port,
                                        bool proxy);

/* ---- read-only views for the policy engine ---- */
const struct ip_addr *smtp_session_client(const struct smtp_session *s);
unsigned smtp_session_listener(const struct smtp_session *s);
const char *smtp_session_helo(const struct smtp_session *s);   /* NULL before HELO */
const char *smtp_session_mail_from(const struct smtp_session *s); /* NULL outside a transaction */
bool smtp_session_early_talker(const struct smtp_session *s);
bool smtp_session_tls(const struct smtp_session *s);

#endif
