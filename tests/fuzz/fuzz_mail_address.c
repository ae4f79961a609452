/*
 * fuzz_mail_address: libFuzzer target for everything that turns a
 * peer-supplied address into a decision: the MAIL/RCPT path parser, the
 * accepted-domain check that decides "local or relay", IP address and CIDR
 * block parsing (PROXY headers, address literals, policy arguments) and
 * host:port splitting.
 *
 * Invariants checked (abort() on violation, so libFuzzer reports it):
 *   - a parsed path's local part and domain are NUL-terminated within their
 *     caps, and a null path is only accepted as a reverse path;
 *   - mx_config_accepts_domain() is true only for a domain that equals an
 *     accepted domain ignoring ASCII case and one trailing dot: the parser
 *     can never turn a relay trick (percent hack, bang path, quoted "@",
 *     source route) into an accepted domain it does not spell;
 *   - an address that parses formats to text that parses back to the same
 *     address, and no address is ever IPv4-mapped IPv6 after parsing;
 *   - a parsed CIDR block is masked to its prefix and the prefix fits.
 * The first input byte selects nothing: every input goes through all paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "smtp/smtp_parse.h"
#include "util/ipaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] =
	"Hostname = \"mx.fuzz.test\"\n"
	"Relay_Domains = ( \"example.test\" \"xn--bcher-kva.test\" )\n"
	"Maildir = \"/tmp/fuzz-maildir\"\n"
	"ESMTP_Listener { Listen \"127.0.0.1:32099\" { } }\n";

static struct mx_config *cfg;

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Our own, obviously correct, statement of "domain d is one we accept". */
static int spells_accepted(const char *d)
{
	static const char *const accepted[] = {"example.test", "xn--bcher-kva.test"};
	size_t n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
		if (strlen(accepted[i]) != n)
			continue;
		size_t k = 0;
		while (k < n && lower((unsigned char)d[k]) == accepted[i][k])
			k++;
		if (k == n)
			return 1;
	}
	return 0;
}

static void check_path(const char *s, size_t len, bool reverse)
{
	struct smtp_path p;
	memset(&p, 0xA5, sizeof p);
	if (smtp_parse_path(s, len, reverse, &p) != SMTP_PARSE_OK)
		return;
	if (memchr(p.local, '\0', sizeof p.local) == NULL ||
	    memchr(p.domain, '\0', sizeof p.domain) == NULL)
		abort();
	if (p.nparams > SMTP_PARAMS_MAX)
		abort();
	if (p.null_path && !reverse)
		abort();
	if (p.null_path)
		return;
	bool acc = mx_config_accepts_domain(cfg, p.domain);
	if (acc != (spells_accepted(p.domain) != 0))
		abort();
	/* the domain we would deliver to never holds routing characters */
	if (acc && (strpbrk(p.domain, "@%!:,<>\"") != NULL))
		abort();
}

static void check_addr(const char *s, size_t len)
{
	struct ip_addr a, b;
	if (!ip_addr_parse_n(s, len, &a))
		return;
	if (a.family != IP_V4 && a.family != IP_V6)
		abort();
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (a.family == IP_V6 && memcmp(a.bytes, mapped, 12) == 0)
		abort();
	char text[IP_ADDR_TEXT_MAX];
	if (ip_addr_format(&a, text, sizeof text) == NULL)
		abort();
	if (!ip_addr_parse(text, &b) || !ip_addr_equal(&a, &b))
		abort();
}

static void check_block(const char *s)
{
	struct ip_addr net, m;
	unsigned prefix = 999;
	if (!ip_block_parse(s, &net, &prefix))
		return;
	if (prefix > ip_addr_bits(&net))
		abort();
	m = net;
	ip_addr_mask(&m, prefix);
	if (!ip_addr_equal(&m, &net) || !ip_addr_in_block(&net, &net, prefix))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!cfg) {
		char *errs = NULL;
		cfg = mx_config_load_text("/fuzz/addr.conf", conf_text, sizeof conf_text - 1, &errs);
		if (!cfg)
			abort();
		free(errs);
	}
	if (size > 4096)
		return 0;
	/* exact-length copies so ASan sees any read past the end */
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	check_path(s, size, true);
	check_path(s, size, false);
	/* a buffer of exactly `size` bytes, no terminator: parse_n must not
	 * read past its length */
	char *raw = malloc(size ? size : 1);
	if (raw) {
		memcpy(raw, data, size);
		check_addr(raw, size);
		check_path(raw, size, false);
		free(raw);
	}
	if (strlen(s) == size) {
		check_block(s);
		(void)mx_config_accepts_domain(cfg, s);
		char host[256];
		uint16_t port;
		(void)mx_hostport_split(s, host, sizeof host, &port, true);
		(void)mx_hostport_split(s, host, sizeof host, &port, false);
	}
	free(s);
	return 0;
}
