ec_log "[${nothing}]";
# phase: connect
# expect: log=unset_empty.sieve:1: []
