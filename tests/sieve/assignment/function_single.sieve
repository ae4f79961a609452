$c = audit_connections_on_service "/32";
ec_log "${c}";
# phase: connect
# audit: /32=4
# expect: log=function_single.sieve:2: 4
