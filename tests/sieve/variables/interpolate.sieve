$x = "abc";
ec_log "x=${x}";
# phase: connect
# expect: log=interpolate.sieve:2: x=abc
