/*
 * fuzz_smtp_parse: libFuzzer target for the SMTP command and path parser.
 * Each input is one command line; MAIL/RCPT arguments go on to the path
 * parser, both as a reverse and a forward path. The same bytes, read as
 * a message, go to the Received counter (which must respect its stop).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command c;
	struct smtp_path p;
	const char *line = (const char *)data;

	if (smtp_parse_command(line, size, &c) == SMTP_PARSE_OK) {
		if (c.arg < line || c.arg + c.arglen > line + size)
			abort();
		if (smtp_parse_path(c.arg, c.arglen, true, &p) == SMTP_PARSE_OK &&
		    (strlen(p.local) > SMTP_LOCAL_MAX || strlen(p.domain) > SMTP_DOMAIN_MAX))
			abort();
		(void)smtp_parse_path(c.arg, c.arglen, false, &p);
	}
	(void)smtp_parse_path(line, size, true, &p);
	bool u8, lit;
	(void)smtp_parse_domain(line, size, &u8, &lit);
	(void)smtp_utf8_valid(line, size);
	if (smtp_count_received(line, size, 3) > 3 ||
	    smtp_count_received(line, size, SIZE_MAX) > size / 9)
		abort(); /* each field takes at least "Received:" */
	return 0;
}
