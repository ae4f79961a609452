$n = ec_ip_receptions 1;
ec_log "${n}";
# phase: connect
# window: receptions 1 /32=5
# (no MASK: the whole address, /32 for this IPv4 client)
# expect: log=ec_ip_receptions_default_mask.sieve:2: 5
