require "variables";
ec_log "x";
require "regex";
# phase: connect
# expect-compile: 3:1: 'require' must come before any other command (RFC 5228 3.2)
