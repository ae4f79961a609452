# The seed example: /32 at 1001 and /24 at 10001 -> 20 s.
# phase: connect
# client: 192.0.2.10
# audit: /32=1001
# audit: /24=10001
# expect: status=done
# expect: action=none
# expect: tarpit=20
# expect: counter=connect:too many connections /32 (informational)
# expect: counter=connect:too many connections /24 (informational)
($connections) = audit_connections_on_service "/32";
($c_connections) = audit_connections_on_service "/24";
if ec_test :value "gt" :comparator "i;ascii-numeric" "${connections}" "1000" {
  ec_tarpit 10 "too many connections /32";
}

if ec_test :value "gt" :comparator "i;ascii-numeric" "${c_connections}" "10000" {
  ec_tarpit 10 "too many connections /24";
}
