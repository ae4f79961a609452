/*
 * tls: the server's TLS context for STARTTLS (RFC 3207), OpenSSL 3.
 *
 * With TLS_Certificate and TLS_Key configured, those PEM files are used.
 * Without them, a self-signed EC P-256 certificate for Hostname (10 years,
 * subjectAltName DNS:Hostname) and its key are created in TLS_Dir on first
 * start: key file 0600, both written to a temporary name, fsynced and
 * renamed, so a crash never leaves half a key. Later starts reuse them.
 * An MX is reached opportunistically, so a self-signed certificate still
 * gives encryption against passive listeners.
 */
#ifndef MX_NET_TLS_H
#define MX_NET_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct mx_config;

/* Create the self-signed pair in cfg->tls_dir if needed (only when no
 * TLS_Certificate is configured). Returns 0, or -1 with a message in err
 * and in *line the config line it is about (TLS_Dir's; 0 when unset). */
int net_tls_prepare(const struct mx_config *cfg, char *err, size_t errlen, unsigned *line);

/* The SSL_CTX for cfg (call net_tls_prepare first). NULL with err set on
 * failure, and in *line the config line it is about (TLS_Certificate's,
 * TLS_Key's or TLS_Dir's; 0 when that option is unset). The caller owns
 * one reference (SSL_CTX_free). */
SSL_CTX *net_tls_create(const struct mx_config *cfg, char *err, size_t errlen, unsigned *line);

/* Paths of the certificate and key the config resolves to. */
void net_tls_paths(const struct mx_config *cfg, char *cert, char *key, size_t len);

#endif
