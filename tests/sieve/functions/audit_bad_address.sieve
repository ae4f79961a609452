($n) = audit_connections_on_service "300.1.1.1/8";
# a malformed argument is a runtime error, never a silent zero
# phase: connect
# audit: /32=1
# expect: status=error
# expect: error=audit_bad_address.sieve:1: audit_connections_on_service "300.1.1.1/8": bad address "300.1.1.1/8"
