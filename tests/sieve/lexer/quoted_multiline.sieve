ec_log "one
two";
# phase: connect
# expect: log=quoted_multiline.sieve:1: one\ntwo
