/*
 * registry: the one table of every command, test and function.
 *
 * Adding a construct is adding a row here and its implementation in
 * exec_*.c: the validator checks every use against the row (argument count
 * and shapes, tags, subtests, block, phases), the interpreter calls the
 * function the row names. Shapes: one letter per positional argument, the
 * first `min` required: s string, l string list, k number or string, v
 * variable, a any value (string, number, list or variable).
 */
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"

#define P_ALL  PHASES_ALL
#define P_MAIL PHASES_MAIL
#define P_RCPT PHASES_RCPT
#define P_DATA PHASES_DATA
#define MC (TG_MATCH | TG_COMP)

static const struct sieve_def sieve_defs[] = {
	/* control (RFC 5228 section 3) */
	{ .name = "require", .kinds = DEF_CMD, .shape = "l", .min = 1, .phases = P_ALL, .id = CMD_REQUIRE },
	{ .name = "if", .kinds = DEF_CMD, .shape = "", .phases = P_ALL, .subtests = 1, .block = true, .id = CMD_IF },
	{ .name = "elsif", .kinds = DEF_CMD, .shape = "", .phases = P_ALL, .subtests = 1, .block = true, .id = CMD_ELSIF },
	{ .name = "else", .kinds = DEF_CMD, .shape = "", .phases = P_ALL, .block = true, .id = CMD_ELSE },
	{ .name = "stop", .kinds = DEF_CMD, .shape = "", .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_stop },
	{ .name = "set", .kinds = DEF_CMD, .shape = "ss", .min = 2, .tags = TG_SETMOD, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_set },

	/* actions (sieve.md section 5) */
	{ .name = "keep", .kinds = DEF_CMD, .shape = "", .phases = P_ALL, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_keep },
	{ .name = "ec_keep", .kinds = DEF_CMD, .shape = "s", .phases = P_ALL, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_keep },
	{ .name = "discard", .kinds = DEF_CMD, .shape = "", .phases = P_DATA, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_discard },
	{ .name = "reject", .kinds = DEF_CMD, .shape = "s", .min = 1, .phases = P_ALL, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_reject },
	{ .name = "ec_action", .kinds = DEF_CMD, .shape = "kss", .min = 2, .phases = P_ALL, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_ec_action },
	{ .name = "ec_disconnect", .kinds = DEF_CMD, .shape = "kss", .min = 0, .phases = P_ALL, .terminal = true, .id = CMD_OTHER, .cmd = sieve_cmd_ec_disconnect },
	{ .name = "ec_tarpit", .kinds = DEF_CMD, .shape = "ks", .min = 1, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_ec_tarpit },
	{ .name = "ec_log", .kinds = DEF_CMD, .shape = "s", .min = 1, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_ec_log },
	{ .name = "ec_inc_counter", .kinds = DEF_CMD, .shape = "s", .min = 1, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_ec_inc_counter },
	{ .name = "vctx_conn_set", .kinds = DEF_CMD, .shape = "ss", .min = 2, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_vctx_set },
	{ .name = "vctx_conn_delete", .kinds = DEF_CMD, .shape = "s", .min = 1, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_vctx_delete },
	{ .name = "vctx_mess_set", .kinds = DEF_CMD, .shape = "ss", .min = 2, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_vctx_set },
	{ .name = "vctx_mess_delete", .kinds = DEF_CMD, .shape = "s", .min = 1, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_vctx_delete },
	{ .name = "hash_set", .kinds = DEF_CMD | DEF_FUNC, .shape = "vsa", .min = 3, .phases = P_ALL, .id = CMD_OTHER, .cmd = sieve_cmd_hash_set, .func = sieve_fn_hash_set },

	/* tests (sieve.md section 4) */
	{ .name = "true", .kinds = DEF_TEST, .shape = "", .phases = P_ALL, .test = sieve_test_true },
	{ .name = "false", .kinds = DEF_TEST, .shape = "", .phases = P_ALL, .test = sieve_test_false },
	{ .name = "not", .kinds = DEF_TEST, .shape = "", .phases = P_ALL, .subtests = 1, .test = sieve_test_not },
	{ .name = "anyof", .kinds = DEF_TEST, .shape = "", .phases = P_ALL, .subtests = 2, .test = sieve_test_anyof },
	{ .name = "allof", .kinds = DEF_TEST, .shape = "", .phases = P_ALL, .subtests = 2, .test = sieve_test_allof },
	{ .name = "exists", .kinds = DEF_TEST, .shape = "l", .min = 1, .phases = P_DATA, .test = sieve_test_exists },
	{ .name = "header", .kinds = DEF_TEST, .shape = "ll", .min = 2, .tags = MC, .phases = P_DATA, .default_comp = COMP_CASEMAP, .test = sieve_test_header },
	{ .name = "address", .kinds = DEF_TEST, .shape = "ll", .min = 2, .tags = MC | TG_ADDR, .phases = P_DATA, .default_comp = COMP_CASEMAP, .test = sieve_test_address },
	{ .name = "envelope", .kinds = DEF_TEST, .shape = "ll", .min = 2, .tags = MC | TG_ADDR, .phases = P_MAIL, .default_comp = COMP_CASEMAP, .test = sieve_test_envelope },
	{ .name = "size", .kinds = DEF_TEST, .shape = "k", .min = 1, .tags = TG_SIZE, .phases = P_DATA, .test = sieve_test_size },
	{ .name = "string", .kinds = DEF_TEST, .shape = "ll", .min = 2, .tags = MC, .phases = P_ALL, .default_comp = COMP_CASEMAP, .test = sieve_test_string },
	{ .name = "ec_test", .kinds = DEF_TEST, .shape = "aa", .min = 2, .tags = MC, .phases = P_ALL, .default_comp = COMP_OCTET, .test = sieve_test_ec_test },
	{ .name = "isset", .kinds = DEF_TEST, .shape = "vk", .min = 1, .phases = P_ALL, .test = sieve_test_isset },
	{ .name = "is_valid_ip", .kinds = DEF_TEST, .shape = "s", .min = 1, .phases = P_ALL, .test = sieve_test_is_valid_ip },
	{ .name = "is_rfc821_ip", .kinds = DEF_TEST, .shape = "s", .min = 1, .phases = P_ALL, .test = sieve_test_is_rfc821_ip },
	{ .name = "type", .kinds = DEF_TEST, .shape = "vl", .min = 2, .tags = MC, .phases = P_ALL, .default_comp = COMP_CASEMAP, .test = sieve_test_type },
	{ .name = "is_true", .kinds = DEF_TEST, .shape = "a", .min = 1, .phases = P_ALL, .test = sieve_test_is_true },
	{ .name = "vctx_conn", .kinds = DEF_TEST, .shape = "sl", .min = 2, .tags = MC, .phases = P_ALL, .default_comp = COMP_OCTET, .test = sieve_test_vctx },
	{ .name = "vctx_mess", .kinds = DEF_TEST, .shape = "sl", .min = 2, .tags = MC, .phases = P_ALL, .default_comp = COMP_OCTET, .test = sieve_test_vctx },

	/* functions (sieve.md section 6) */
	{ .name = "audit_connections_on_service", .kinds = DEF_FUNC, .shape = "s", .phases = P_ALL, .func = sieve_fn_audit },
	{ .name = "audit_connections_on_listener", .kinds = DEF_FUNC, .shape = "s", .phases = P_ALL, .func = sieve_fn_audit },
	{ .name = "audit_service", .kinds = DEF_FUNC, .shape = "ss", .min = 1, .phases = P_ALL, .func = sieve_fn_audit },
	{ .name = "ec_ip_connections", .kinds = DEF_FUNC, .shape = "ak", .min = 1, .phases = P_ALL, .func = sieve_fn_ip_window },
	{ .name = "ec_ip_receptions", .kinds = DEF_FUNC, .shape = "ak", .min = 1, .phases = P_ALL, .func = sieve_fn_ip_window },
	{ .name = "ec_ip_rejections", .kinds = DEF_FUNC, .shape = "ak", .min = 1, .phases = P_ALL, .func = sieve_fn_ip_window },
	{ .name = "audit_series", .kinds = DEF_FUNC, .shape = "sskkk", .min = 3, .phases = P_ALL, .func = sieve_fn_audit_series },
	{ .name = "audit_series_add", .kinds = DEF_FUNC, .shape = "ssk", .min = 2, .phases = P_ALL, .func = sieve_fn_audit_series_add },
	{ .name = "vctx_conn_get", .kinds = DEF_FUNC, .shape = "s", .min = 1, .phases = P_ALL, .func = sieve_fn_vctx_get },
	{ .name = "vctx_mess_get", .kinds = DEF_FUNC, .shape = "s", .min = 1, .phases = P_ALL, .func = sieve_fn_vctx_get },
	{ .name = "hash_create", .kinds = DEF_FUNC, .shape = "", .phases = P_ALL, .func = sieve_fn_hash_create },
	{ .name = "hash_get", .kinds = DEF_FUNC, .shape = "as", .min = 2, .phases = P_ALL, .func = sieve_fn_hash_get },
	{ .name = "hash_keys", .kinds = DEF_FUNC, .shape = "a", .min = 1, .phases = P_ALL, .func = sieve_fn_hash_keys },
	{ .name = "split", .kinds = DEF_FUNC, .shape = "ss", .min = 2, .phases = P_ALL, .func = sieve_fn_split },
	{ .name = "join", .kinds = DEF_FUNC, .shape = "sa", .min = 2, .phases = P_ALL, .func = sieve_fn_join },
	{ .name = "ec_dns_lookup", .kinds = DEF_FUNC, .shape = "ss", .min = 2, .phases = P_ALL, .func = sieve_fn_dns_lookup },
};

static const char *const sieve_extensions[] = {
	"envelope", "variables", "relational", "regex", "reject", "comparator-i;octet",
	"comparator-i;ascii-casemap", "comparator-i;ascii-numeric",
};

const struct sieve_def *sieve_registry_find(const char *name)
{
	for (size_t i = 0; i < sizeof(sieve_defs) / sizeof(sieve_defs[0]); i++)
		if (strcasecmp(sieve_defs[i].name, name) == 0)
			return &sieve_defs[i];
	return NULL;
}

bool sieve_registry_extension(const char *name)
{
	for (size_t i = 0; i < sizeof(sieve_extensions) / sizeof(sieve_extensions[0]); i++)
		if (strcasecmp(sieve_extensions[i], name) == 0)
			return true;
	return false;
}

const struct sieve_def *sieve_registry_table(size_t *n)
{
	*n = sizeof(sieve_defs) / sizeof(sieve_defs[0]);
	return sieve_defs;
}
