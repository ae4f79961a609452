ec_log "abc;
# phase: connect
# expect-compile: 1:8: unterminated quoted string
