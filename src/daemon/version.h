/*
 * version: the one place the release number is written.
 */
#ifndef MX_DAEMON_VERSION_H
#define MX_DAEMON_VERSION_H

#define MXSIEVE_VERSION "0.1.0"

#endif
