/*
 * main: the mxsieve command line.
 *
 *   mxsieve -c FILE            run in the foreground
 *   mxsieve -t -c FILE         check the configuration and every policy script
 *   mxsieve -V                 print the version
 *   mxsieve SUBCOMMAND ...     a tool (table below): --compile, ctl, try, ...
 *
 * Subcommands are a table so later issues add a row, not a branch.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/config.h"
#include "ctl/ctl.h"
#include "daemon/server.h"
#include "daemon/version.h"
#include "net/tls.h"
#include "policy/policy.h"
#include "policy/try.h"
#include "sieve/sieve.h"

#define DEFAULT_CONFIG "examples/mxsieve.conf"

static int usage(FILE *f, int code)
{
	fprintf(f, "usage: mxsieve [-t] [-c FILE]\n"
	           "       mxsieve -V | -h | --help\n"
	           "       mxsieve --compile FILE [--phase NAME]\n"
	           "       mxsieve --sieve-eval FILE --phase NAME [fixtures...]\n"
	           "       mxsieve ctl [-c FILE | -s SOCKET] COMMAND...\n"
	           "       mxsieve try --phase NAME ... (mxsieve try alone: its options)\n"
	           "Without -c the file is examples/mxsieve.conf, relative to the current folder.\n");
	return code;
}

/* `mxsieve ctl`: find the socket from -s PATH, or from -c FILE's
 * Control_Listener, then hand over to the console client. */
static int ctl_main(int argc, char **argv)
{
	const char *sock = NULL, *conf = DEFAULT_CONFIG;
	struct mx_config *cfg = NULL;
	int opt;

	/* options stop at the first command word ("+"): `ctl inbound_audit
	 * top 10 -c` is a command; a lone `-s` or an unknown `-x` is bad usage,
	 * not a command for the server */
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		printf("usage: mxsieve ctl [-c FILE | -s SOCKET] COMMAND [ARGS...]\n");
		return 0;
	}
	optind = 1;
	opterr = 0;
	while ((opt = getopt(argc, argv, "+c:s:h")) != -1) {
		switch (opt) {
		case 's': sock = optarg; break;
		case 'c': conf = optarg; break;
		case 'h':
			printf("usage: mxsieve ctl [-c FILE | -s SOCKET] COMMAND [ARGS...]\n");
			return 0;
		default:
			fprintf(stderr, "mxsieve ctl: %s -%c\nusage: mxsieve ctl [-c FILE | -s SOCKET] "
			        "COMMAND [ARGS...]\n", optopt == 'c' || optopt == 's' ?
			        "missing the value of" : "unknown option", optopt);
			return 2;
		}
	}
	if (!sock) {
		char *errs = NULL;
		cfg = mx_config_load(conf, &errs);
		if (!cfg || !cfg->control_path) {
			if (errs)
				fprintf(stderr, "%smxsieve ctl: give the server's file (-c FILE) or its "
				        "console socket (-s SOCKET)\n", errs);
			else
				fprintf(stderr, "mxsieve ctl: %s: no Control_Listener configured\n", conf);
			free(errs);
			mx_config_free(cfg);
			return 2;
		}
		free(errs);
		sock = cfg->control_path;
	}
	int rc = ctl_client_main(sock, argc - optind, argv + optind);
	mx_config_free(cfg);
	return rc;
}

static const struct {
	const char *name;
	int (*main)(int argc, char **argv);
} subcommands[] = {
	{"--compile", sieve_tool_compile_main},
	{"--sieve-eval", sieve_tool_eval_main},
	{"ctl", ctl_main},
	{"try", policy_try_main},
};

/* A reload runs as User: every file it reads again must be readable by
 * User, or each SIGHUP fails while `-t` (run as root by the unit's
 * ExecReload) passes. Checked from a child that drops to User. 0 when
 * nothing is unreadable (or there is no User, or we are not root). */
static int check_readable_as_user(const struct mx_config *cfg)
{
	if (!cfg->user || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (!pw)
		return 0; /* the start says so, with its own message */
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
		    setuid(pw->pw_uid) != 0)
			_exit(0); /* cannot check: say nothing */
		struct reread {
			const char *file;
			unsigned line;
		} files[4 + 2 * MX_PHASE_COUNT];
		size_t n = 0;
		files[n++] = (struct reread){cfg->path, 0};
		if (cfg->tls_certificate)
			files[n++] = (struct reread){cfg->tls_certificate, cfg->tls_certificate_line};
		if (cfg->tls_key && cfg->tls_key != cfg->tls_certificate)
			files[n++] = (struct reread){cfg->tls_key, cfg->tls_key_line};
		if (cfg->valid_recipients)
			files[n++] = (struct reread){cfg->valid_recipients, 0};
		for (int ph = 0; cfg->sieve && ph < MX_PHASE_COUNT; ph++)
			for (int k = 0; k < 2; k++)
				if (cfg->sieve->scripts[ph][k].source)
					files[n++] = (struct reread){cfg->sieve->scripts[ph][k].source,
					                                 cfg->sieve->scripts[ph][k].line};
		int bad = 0;
		for (size_t i = 0; i < n; i++) {
			int fd = open(files[i].file, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				continue;
			}
			char where[64] = "";
			if (files[i].line)
				snprintf(where, sizeof where, "%u:", files[i].line);
			fprintf(stderr, "%s:%s %s: not readable by User \"%s\" (%s): every reload "
			        "(which reads it as %s) would fail\n", cfg->path, where, files[i].file,
			        cfg->user, strerror(errno), cfg->user);
			bad = 1;
		}
		_exit(bad);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 0;
}

static int check_config(const char *path)
{
	char *errs = NULL;
	struct mx_config *cfg = mx_config_load(path, &errs);

	if (!cfg) {
		fputs(errs ? errs : "mxsieve: cannot load the configuration\n", stderr);
		free(errs);
		return 1;
	}
	free(errs);
	errs = NULL;
	struct policy *p = policy_load(cfg, &errs);
	if (!p) {
		fputs(errs ? errs : "mxsieve: policy scripts failed to compile\n", stderr);
		if (errs && errs[0] && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		free(errs);
		mx_config_free(cfg);
		return 1;
	}
	free(errs);
	policy_unref(p);
	/* A configured certificate and key are loaded as the start would
	 * (a self-signed pair is left alone: -t creates nothing). */
	if (cfg->tls_certificate) {
		char err[4200];
		unsigned line = 0;
		SSL_CTX *tls = net_tls_create(cfg, err, sizeof err, &line);
		if (!tls) {
			if (line)
				fprintf(stderr, "%s:%u: %s\n", cfg->path, line, err);
			else
				fprintf(stderr, "%s: %s\n", cfg->path, err);
			mx_config_free(cfg);
			return 1;
		}
		SSL_CTX_free(tls);
	}
	int rc = check_readable_as_user(cfg);
	mx_config_free(cfg);
	if (rc != 0)
		return 1;
	printf("%s: ok\n", path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	bool test = false;
	int opt;

	if (argc > 1) {
		for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
			if (strcmp(argv[1], subcommands[i].name) == 0) {
				if (subcommands[i].name[0] == '-')
					return subcommands[i].main(argc, argv);
				return subcommands[i].main(argc - 1, argv + 1);
			}
		}
	}
	if (argc > 1 && strcmp(argv[1], "--help") == 0)
		return usage(stdout, 0);
	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'V':
			printf("mxsieve %s\n", MXSIEVE_VERSION);
			return 0;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (optind != argc)
		return usage(stderr, 2);
	if (test)
		return check_config(config);

	struct mx_server srv;
	if (mx_server_start(&srv, config) < 0) {
		mx_server_free(&srv); /* whatever the failed start had set up */
		return 1;
	}
	int rc = mx_server_run(&srv);
	mx_server_free(&srv);
	return rc;
}
