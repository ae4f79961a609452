/*
 * smtp_session: one SMTP conversation (RFC 5321) on a plain socket it reads
 * and writes itself, or on a libevent bufferevent (TLS, test pairs).
 *
 * A state machine in OpenSMTPD's manner: a table of commands {verb, check,
 * proceed}; one enter_state() that logs every transition at debug level;
 * the socket layer hands semantic events (data in, drained, timeout, error)
 * to one switch; one exit path (session_free) releases everything, and it
 * is the only place that calls audit_live_remove().
 *
 * Extensions: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152),
 * ENHANCEDSTATUSCODES (2034, codes from 3463), STARTTLS (3207), SMTPUTF8
 * (6531), CHUNKING (3030). Input is parsed in place from what was read,
 * several commands per read, and replies go out in order; while
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

struct mx_config;
struct policy;

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
struct smtp_server *smtp_session_server(const struct smtp_session *s);
const struct mx_config *smtp_session_config(const struct smtp_session *s);
/* The compiled scripts the session was accepted with (kept across reloads,
 * like its config); NULL when the server has none. */
struct policy *smtp_session_policy(const struct smtp_session *s);
uint16_t smtp_session_port(const struct smtp_session *s);
unsigned smtp_session_id(const struct smtp_session *s);
/* The Listen address the session came in on ("127.0.0.1:2525"), or "". */
const char *smtp_session_listener_name(const struct smtp_session *s);
/* The envelope sender: the one being checked in the mailfrom phase, then
 * the transaction's; NULL outside a transaction. */
const char *smtp_session_sender(const struct smtp_session *s);
/* Recipient i of the transaction; in the rcptto phase the one being checked
 * comes last. False past the end. */
bool smtp_session_rcpt(const struct smtp_session *s, size_t i, const char **local,
                       const char **domain);
/* The message so far (Return-Path and Received first, CRLF line ends) and
 * its body size; false outside DATA/BDAT. */
bool smtp_session_message(const struct smtp_session *s, const char **data, size_t *len,
                          uint64_t *size);
/* Messages accepted and recipients accepted on this connection, and
 * recipients of the current message. */
void smtp_session_counts(const struct smtp_session *s, unsigned *messages, unsigned *rcpts,
                         unsigned *message_rcpts);

/* The session's policy state slot, owned by smtp_policy.c. */
struct smtp_policy_state;
struct smtp_policy_state **smtp_session_policy_slot(struct smtp_session *s);

#endif
