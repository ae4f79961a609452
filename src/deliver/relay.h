/*
 * relay: the SMTP client of Delivery = "relay". It hands an accepted
 * message to the next hop (Relay_Target) and reports the next hop's
 * answer on the job; the session answers its client only after that.
 *
 * One `struct relay` per server: the next hop's address, our HELO name,
 * and whether the next hop is down (a failed connect or greeting holds it
 * down for RELAY_DOWN_HOLD_MS: messages meanwhile fail at once instead of
 * each waiting for its own connect timeout). One `struct relay_conn` per
 * worker thread: a connection kept open between messages, with what its
 * EHLO offered (PIPELINING, 8BITMIME, SMTPUTF8, XFORWARD).
 */
#ifndef MX_DELIVER_RELAY_H
#define MX_DELIVER_RELAY_H

#include <stdbool.h>

struct deliver_job;
struct relay;
struct relay_conn;

/* After a failed connect (or greeting) the next hop counts as down for
 * this long; then the next message tries again. */
#define RELAY_DOWN_HOLD_MS 5000

/* target: "host:port" / "[v6]:port" (port 25 when omitted); helo: our
 * name in EHLO. NULL when the target does not parse. */
struct relay *relay_new(const char *target, const char *helo);
void relay_free(struct relay *r);

/* Is the next hop in its down hold? Any thread. */
bool relay_is_down(struct relay *r);

struct relay_conn *relay_conn_new(void);
/* QUIT (when the connection is still usable), close, free. */
void relay_conn_free(struct relay_conn *rc);

/* Relay one job over rc (opening it when closed; a reused connection the
 * next hop had closed is tried once more on a fresh one). Sets the job's
 * status and detail: DELIVER_OK only when the next hop answered 250 to
 * the data; its 5xx is PERMFAIL, anything else TEMPFAIL. */
void relay_deliver(struct relay *r, struct relay_conn *rc, struct deliver_job *job);

#endif
