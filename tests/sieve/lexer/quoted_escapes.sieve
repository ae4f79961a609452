

ec_log "a\"b\\c \n";
# backslash makes the next character literal
# phase: connect
# expect: log=quoted_escapes.sieve:3: a"b\c n
