($n) = audit_connections_on_listener "/32";
ec_log "${n}";
# phase: connect
# audit: /32=9
# audit-listener: /32=2
# expect: log=audit_listener.sieve:2: 2
