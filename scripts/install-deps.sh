#!/bin/sh
# Installs every Debian 12 package that mxsieve needs to build, run and test.
# Safe to run again: apt-get skips what is there. Needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; we only want its tools (smtp-source,
# smtp-sink) and a private instance the tests start themselves.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
	build-essential pkg-config clang libclang-rt-14-dev \
	libevent-dev libssl-dev libpcre2-dev libc-ares-dev zlib1g-dev openssl \
	python3 python3-pytest swaks postfix dnsmasq-base haproxy \
	dovecot-sieve dovecot-core valgrind strace \
	systemd >/dev/null  # systemd-analyze checks the unit; nothing here runs systemd
