/*
 * tls: STARTTLS context and the self-signed certificate. See tls.h.
 */
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "conf/config.h"
#include "util/fsutil.h"

static void ssl_error(char *err, size_t errlen, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof buf);
	snprintf(err, errlen, "%s: %s", what, e ? buf : "unknown error");
	ERR_clear_error();
}

void net_tls_paths(const struct mx_config *cfg, char *cert, char *key, size_t len)
{
	if (cfg->tls_certificate) {
		snprintf(cert, len, "%s", cfg->tls_certificate);
		snprintf(key, len, "%s", cfg->tls_key ? cfg->tls_key : cfg->tls_certificate);
	} else {
		const char *dir = cfg->tls_dir ? cfg->tls_dir : "var/tls";
		snprintf(cert, len, "%s/selfsigned.crt", dir);
		snprintf(key, len, "%s/selfsigned.key", dir);
	}
}

/* Write a PEM object through a temporary file, fsync, rename. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	char tmp[4200];
	int fd, ok;
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
	         : PEM_write_X509(f, cert);
	if (!ok || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	return rename(tmp, path);
}

static X509 *make_cert(EVP_PKEY *key, const char *host)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	unsigned char serial[16];
	char san[300];
	BIGNUM *bn = NULL;

	if (!x)
		return NULL;
	if (RAND_bytes(serial, sizeof serial) != 1)
		goto fail;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)host, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof san, "DNS:%s", host);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext)
		goto fail;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, key, EVP_sha256()))
		goto fail;
	BN_free(bn);
	return x;
fail:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

int net_tls_prepare(const struct mx_config *cfg, char *err, size_t errlen, unsigned *line)
{
	char cert[4096], key[4096];
	struct stat st;

	*line = cfg->tls_dir_line;
	if (cfg->tls_certificate)
		return 0;
	net_tls_paths(cfg, cert, key, sizeof cert);
	if (stat(cert, &st) == 0 && stat(key, &st) == 0)
		return 0;
	const char *dir = cfg->tls_dir ? cfg->tls_dir : "var/tls";
	if (mx_mkdir_p(dir, 0700) < 0) {
		snprintf(err, errlen, "TLS_Dir %s: %s", dir, strerror(errno));
		return -1;
	}
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	if (!pk) {
		ssl_error(err, errlen, "generating the TLS key");
		return -1;
	}
	X509 *x = make_cert(pk, cfg->hostname ? cfg->hostname : "localhost");
	if (!x) {
		EVP_PKEY_free(pk);
		ssl_error(err, errlen, "making the self-signed certificate");
		return -1;
	}
	int rc = 0;
	if (write_pem(key, 0600, pk, NULL) < 0 || write_pem(cert, 0644, NULL, x) < 0) {
		snprintf(err, errlen, "writing %s: %s", cert, strerror(errno));
		rc = -1;
	}
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

SSL_CTX *net_tls_create(const struct mx_config *cfg, char *err, size_t errlen, unsigned *line)
{
	char cert[2048], key[2048], what[4200];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	/* without TLS_Certificate the pair is ours, in TLS_Dir; a key in
	 * the certificate's file is the certificate's line */
	unsigned cert_line = cfg->tls_certificate ? cfg->tls_certificate_line : cfg->tls_dir_line;
	unsigned key_line = cfg->tls_key_line ? cfg->tls_key_line : cert_line;

	*line = cert_line;
	if (!ctx) {
		ssl_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	net_tls_paths(cfg, cert, key, sizeof cert);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle TLS sessions give their I/O buffers back: tarpitted clients are many. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof what, "TLS certificate %s", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof what, "TLS key %s", key);
		*line = key_line;
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof what, "TLS key %s does not match %s", key, cert);
		*line = key_line;
		goto fail;
	}
	return ctx;
fail:
	ssl_error(err, errlen, what);
	SSL_CTX_free(ctx);
	return NULL;
}
