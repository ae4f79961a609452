
ec_log "hello";
# phase: connect
# expect: log=ec_log.sieve:2: hello
