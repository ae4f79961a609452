$n = ec_ip_connections 0 24;
ec_log "${n}";
# phase: connect
# window: connections 0 /24=17
# expect: log=ec_ip_connections.sieve:2: 17
