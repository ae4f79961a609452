/*
 * ctl: the control console. See ctl.h for the protocol.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

#define CTL_MAX_HANDLERS 32
#define CTL_MAX_WORDS 32
#define CTL_MAX_LINE 4096
/* A console that sends commands but never reads answers is cut off here. */
#define CTL_MAX_PENDING_OUTPUT (4u << 20)
/* After the client's half-close, how long its last answers may take to go. */
#define CTL_DRAIN_S 30
/* How long `mxsieve ctl` waits for the next line of an answer. */
#define CTL_CLIENT_TIMEOUT_S 30

struct ctl_entry {
	const char *name;
	const char *help;
	ctl_handler fn;
	void *arg;
};

/* One console client; listed so that ctl_destroy can free what is open. */
struct ctl_conn {
	struct ctl *c;
	struct bufferevent *bev;
	struct ctl_conn *prev, *next;
};

struct ctl {
	struct evconnlistener *listener;
	char *path;
	struct ctl_entry entries[CTL_MAX_HANDLERS];
	int nentries;
	struct ctl_conn *conns;
};

int ctl_split(char *line, char **argv, int max)
{
	int n = 0;
	char *p = line;

	while (*p && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '"') {
			char *w = ++p, *o = p;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				*o++ = *p++;
			}
			if (*p)
				p++;
			*o = '\0';
			argv[n++] = w;
			/* `o` may trail `p`; the word is terminated either way. */
			continue;
		}
		argv[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static char *ctl_help(struct ctl *c)
{
	size_t cap = 256, len = 0;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	len = (size_t)snprintf(out, cap, "help: this list\n");
	for (int i = 0; i < c->nentries; i++) {
		size_t need = strlen(c->entries[i].help) + 2;
		if (len + need + 1 > cap) {
			cap = (len + need + 1) * 2;
			char *n = realloc(out, cap);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s\n", c->entries[i].help);
	}
	return out;
}

static char *ctl_dispatch(struct ctl *c, char *line)
{
	char *argv[CTL_MAX_WORDS];
	int argc = ctl_split(line, argv, CTL_MAX_WORDS);

	if (argc == 0)
		return strdup("");
	if (strcasecmp(argv[0], "help") == 0)
		return argc == 1 ? ctl_help(c) : strdup("error: usage: help (no arguments)\n");
	for (int i = 0; i < c->nentries; i++)
		if (strcasecmp(argv[0], c->entries[i].name) == 0)
			return c->entries[i].fn(c->entries[i].arg, argc, argv);
	char msg[160];
	snprintf(msg, sizeof msg, "error: unknown command \"%.60s\" (try \"help\")\n", argv[0]);
	return strdup(msg);
}

/* Write an answer, dot-stuffed, then the "." line. */
static void ctl_write_answer(struct evbuffer *out, const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (*p == '.')
			evbuffer_add(out, ".", 1);
		evbuffer_add(out, p, len);
		evbuffer_add(out, "\n", 1);
		p += len + (nl ? 1 : 0);
	}
	evbuffer_add(out, ".\n", 2);
}

static void ctl_conn_free(struct ctl_conn *cc)
{
	if (cc->prev)
		cc->prev->next = cc->next;
	else
		cc->c->conns = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	bufferevent_free(cc->bev);
	free(cc);
}

static void ctl_conn_drained(struct bufferevent *bev, void *arg);
static void ctl_conn_event(struct bufferevent *bev, short what, void *arg);

/* The rest of a line that was too long: read and dropped (closing with it
 * unread would reset the connection under the answer). */
static void ctl_conn_discard(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void ctl_conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *cc = arg;
	struct ctl *c = cc->c;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		char *answer = len > CTL_MAX_LINE ? strdup("error: line too long\n")
		                                   : ctl_dispatch(c, line);
		ctl_write_answer(out, answer ? answer : "error: out of memory\n");
		free(answer);
		free(line);
		if (evbuffer_get_length(out) > CTL_MAX_PENDING_OUTPUT) {
			ctl_conn_free(cc);
			return;
		}
	}
	if (evbuffer_get_length(in) > CTL_MAX_LINE) {
		/* a line that never ends within the limit: say so, then close
		 * once the answer has gone (its rest is not read) */
		ctl_write_answer(out, "error: line too long\n");
		evbuffer_drain(in, evbuffer_get_length(in));
		struct timeval drain = {CTL_DRAIN_S, 0};
		bufferevent_setcb(bev, ctl_conn_discard, ctl_conn_drained, ctl_conn_event, cc);
		bufferevent_set_timeouts(bev, &drain, &drain);
	}
}

/* Output drained after the client's half-close: done. */
static void ctl_conn_drained(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ctl_conn_free(arg);
}

static void ctl_conn_event(struct bufferevent *bev, short what, void *arg)
{
	/* EOF is the end of the client's input, not of its reading
	 * (`echo CMD | socat - UNIX-CONNECT:...`): answers still queued go
	 * out first, within CTL_DRAIN_S */
	if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		struct timeval drain = {CTL_DRAIN_S, 0};
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, ctl_conn_drained, ctl_conn_event, arg);
		bufferevent_set_timeouts(bev, NULL, &drain);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		ctl_conn_free(arg);
}

static bool ctl_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd,
                       struct sockaddr *sa, int salen, void *arg)
{
	struct ctl *c = arg;
	struct ctl_conn *cc;

	if (!ctl_peer_allowed(fd)) {
		log_event(LOG_WARNING, "ctl_refused", "reason=peer_uid");
		close(fd);
		return;
	}
	if (!(cc = calloc(1, sizeof *cc)) ||
	    !(cc->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	                                       BEV_OPT_CLOSE_ON_FREE))) {
		free(cc);
		close(fd);
		return;
	}
	cc->c = c;
	cc->next = c->conns;
	if (c->conns)
		c->conns->prev = cc;
	c->conns = cc;
	bufferevent_setcb(cc->bev, ctl_conn_read, NULL, ctl_conn_event, cc);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

struct ctl *ctl_create(struct event_base *base, const char *path, char *err,
                       unsigned errlen)
{
	struct sockaddr_un sun;
	struct ctl *c;
	struct stat st;
	mode_t old;

	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return NULL;
	}
	/* a stale socket is replaced below; any other file is not ours */
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	old = umask(0177);
	c->listener = evconnlistener_new_bind(base, ctl_accept, c,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	                                      16, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (!c->listener) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		free(c->path);
		free(c);
		return NULL;
	}
	chmod(path, 0600);
	return c;
}

void ctl_register(struct ctl *c, const char *name, const char *help,
                  ctl_handler fn, void *arg)
{
	if (c->nentries == CTL_MAX_HANDLERS)
		abort(); /* a programming error: raise CTL_MAX_HANDLERS */
	c->entries[c->nentries++] = (struct ctl_entry){name, help, fn, arg};
}

void ctl_destroy(struct ctl *c)
{
	if (!c)
		return;
	while (c->conns)
		ctl_conn_free(c->conns);
	evconnlistener_free(c->listener);
	unlink(c->path);
	free(c->path);
	free(c);
}

int ctl_client_main(const char *path, int argc, char **argv)
{
	struct sockaddr_un sun;
	char buf[8192];
	size_t cmdlen = 0;
	char *cmd;
	int fd, status = 0;
	bool line_start = true, first = true, error = false;
	FILE *in;

	if (argc < 1) {
		fprintf(stderr, "usage: mxsieve ctl [-c FILE | -s SOCKET] COMMAND [ARGS...]\n");
		return 2;
	}
	for (int i = 0; i < argc; i++)
		if (strpbrk(argv[i], "\r\n")) { /* it would be a second command */
			fprintf(stderr, "mxsieve ctl: arguments may not contain line breaks\n");
			return 2;
		}
	struct stat st;
	if (strlen(path) >= sizeof sun.sun_path) {
		fprintf(stderr, "mxsieve ctl: %s: socket path too long (at most %zu bytes)\n", path,
		        sizeof sun.sun_path - 1);
		return 2;
	}
	if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "mxsieve ctl: %s: not a socket\n", path);
		return 2;
	}
	for (int i = 0; i < argc; i++)
		cmdlen += strlen(argv[i]) * 2 + 3;
	cmd = malloc(cmdlen + 2);
	if (!cmd)
		return 2;
	cmd[0] = '\0';
	for (int i = 0, o = 0; i < argc; i++) {
		bool quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\"") != NULL;
		if (i)
			cmd[o++] = ' ';
		if (quote)
			cmd[o++] = '"';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				cmd[o++] = '\\';
			cmd[o++] = *p;
		}
		if (quote)
			cmd[o++] = '"';
		cmd[o] = '\0';
	}
	strcat(cmd, "\n");

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		fprintf(stderr, "mxsieve ctl: cannot reach %s: %s\n", path, strerror(errno));
		free(cmd);
		if (fd >= 0)
			close(fd);
		return 2;
	}
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		fprintf(stderr, "mxsieve ctl: write: %s\n", strerror(errno));
		free(cmd);
		close(fd);
		return 2;
	}
	free(cmd);
	/* a server that accepts and never answers must not hang the caller */
	struct timeval tmo = {CTL_CLIENT_TIMEOUT_S, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo);
	in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return 2;
	}
	status = 2; /* until the closing "." arrives */
	errno = 0;
	while (fgets(buf, sizeof buf, in)) {
		char *p = buf;
		if (line_start && strcmp(buf, ".\n") == 0) {
			status = error ? 1 : 0;
			break;
		}
		if (line_start && buf[0] == '.')
			p++;
		if (first && strncmp(p, "error: ", 7) == 0)
			error = true;
		first = false;
		fputs(p, stdout);
		line_start = strchr(buf, '\n') != NULL;
	}
	fclose(in);
	if (status == 2 && (errno == EAGAIN || errno == EWOULDBLOCK))
		fprintf(stderr, "mxsieve ctl: no answer within %d s\n", CTL_CLIENT_TIMEOUT_S);
	else if (status == 2)
		fprintf(stderr, "mxsieve ctl: connection closed before the answer ended\n");
	return status;
}
