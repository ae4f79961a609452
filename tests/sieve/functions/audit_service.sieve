($n) = audit_service "SMTP" "192.0.2.0/24";
ec_log "${n}";
# phase: connect
# audit: 192.0.2.0/24=33
# expect: log=audit_service.sieve:2: 33
