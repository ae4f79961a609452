$n = ec_ip_receptions 1;
ec_log "${n}";
# phase: connect
# window: receptions 1 /-1=5
# expect: log=ec_ip_receptions_default_mask.sieve:2: 5
