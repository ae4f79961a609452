set "name" "v";
ec_log "${name}";
# phase: connect
# expect: log=set_rfc5229.sieve:2: v
