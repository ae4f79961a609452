/*
 * ctl: the control console, a line protocol on a Unix socket.
 *
 * A client sends one command per line (words split on blanks, "double quotes"
 * group words). Each answer is the command's text followed by a line holding
 * a single "." (lines of the answer that start with "." get one more, as in
 * SMTP's DATA), so a client can send several commands on one connection. An
 * answer that starts with "error: " reports a failed command.
 *
 * The socket is created mode 0600, and every connection is also checked with
 * SO_PEERCRED: only root and the server's own user may talk to it.
 *
 * ctl knows no command itself: the daemon registers handlers by their first
 * word ("inbound_audit", "sieve", "summary", ...), so this layer depends on
 * nothing above util.
 */
#ifndef MX_CTL_CTL_H
#define MX_CTL_CTL_H

struct event_base;
struct ctl;

/* A handler gets the words of one command (argv[0] is the registered name)
 * and returns the answer as a malloc'd string, which ctl frees. Return a
 * string starting with "error: " for a failed command. */
typedef char *(*ctl_handler)(void *arg, int argc, char **argv);

/* Listen on PATH (an existing socket file there is replaced; any other
 * file there is an error). Returns NULL and writes a message to err on
 * failure. */
struct ctl *ctl_create(struct event_base *base, const char *path, char *err,
                       unsigned errlen);

/* Route commands whose first word is `name` to fn(arg, ...). */
void ctl_register(struct ctl *c, const char *name, const char *help,
                  ctl_handler fn, void *arg);

/* Close the listener and every console connection; unlink the socket. */
void ctl_destroy(struct ctl *c);

/* Split a command line into words (in place); returns the count, at most
 * max. Used by the server and by tools that parse the same syntax. */
int ctl_split(char *line, char **argv, int max);

/* `mxsieve ctl [-s PATH] COMMAND...`: send one command, print the answer.
 * Exit status: 0, 1 when the answer is an error, 2 when the server cannot be
 * reached. */
int ctl_client_main(const char *path, int argc, char **argv);

#endif
