# The seed example verbatim: /32 has 1001 sessions -> 10 s tarpit, normal reply.
# phase: connect
# client: 192.0.2.10
# audit: /32=1001
# audit: /24=1001
# expect: status=done
# expect: action=none
# expect: tarpit=10
# expect: counter=connect:too many connections /32 (informational)
# expect-not: counter=connect:too many connections /24 (informational)
($connections) = audit_connections_on_service "/32";
($c_connections) = audit_connections_on_service "/24";
if ec_test :value "gt" :comparator "i;ascii-numeric" "${connections}" "1000" {
  ec_tarpit 10 "too many connections /32";
}

if ec_test :value "gt" :comparator "i;ascii-numeric" "${c_connections}" "10000" {
  ec_tarpit 10 "too many connections /24";
}
