$a = ec_dns_lookup "x0.example" "A"; $a = ec_dns_lookup "x1.example" "A"; $a = ec_dns_lookup "x2.example" "A"; $a = ec_dns_lookup "x3.example" "A"; $a = ec_dns_lookup "x4.example" "A"; $a = ec_dns_lookup "x5.example" "A"; $a = ec_dns_lookup "x6.example" "A"; $a = ec_dns_lookup "x7.example" "A"; $a = ec_dns_lookup "x8.example" "A";
# phase: connect
# expect: status=error
# expect: error=runtime_error_names_limit.sieve:1: too many DNS lookups (limit max_dns_lookups = 4)
