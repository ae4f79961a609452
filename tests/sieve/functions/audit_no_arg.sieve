($n) = audit_connections_on_service;
ec_log "${n}";
# phase: connect
# audit: =3
# expect: log=audit_no_arg.sieve:2: 3
