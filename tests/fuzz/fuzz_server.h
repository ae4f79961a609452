/*
 * fuzz_server.h: the server the SMTP-session fuzz targets drive, included
 * by each of them (static: one copy per target binary). A config from the
 * shared lines plus the target's own, logging off, an event base, a
 * listener; no delivery is created, so a complete message gets 451.
 */
#ifndef MX_TESTS_FUZZ_SERVER_H
#define MX_TESTS_FUZZ_SERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/config.h"
#include "net/listener.h"
#include "smtp/smtp_server.h"
#include "util/log.h"

static struct event_base *base;
static struct smtp_server srv;
static struct net_listener listener;

/* Set up base, srv and listener on `listen` (a string literal) with the
 * shared config lines plus `extra`; returns the config (owned by srv). */
static struct mx_config *fuzz_server_setup(const char *listen, const char *extra)
{
	char text[1024], *errs = NULL;
	int n = snprintf(text, sizeof text,
	                 "Hostname = \"mx.fuzz.test\"\n"
	                 "Relay_Domains = ( \"example.test\" )\n"
	                 "Maildir = \"/tmp/fuzz-maildir\"\n"
	                 "Max_Message_Size = 4K\n"
	                 "Max_Errors = 30\n"
	                 "%s"
	                 "ESMTP_Listener { Listen \"%s\" { } }\n",
	                 extra, listen);
	if (n < 0 || (size_t)n >= sizeof text)
		abort();
	struct mx_config *cfg = mx_config_load_text("/tmp/fuzz.conf", text, (size_t)n, &errs);
	if (!cfg)
		abort();
	free(errs);
	log_set_level(LOG_EMERG);
	base = event_base_new();
	srv.base = base;
	srv.cfg = smtp_cfgref_new(cfg);
	listener.address = (char *)listen;
	listener.refs = 1;
	return cfg;
}

#endif
