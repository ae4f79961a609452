$r = ec_dns_lookup "x.example" "SRV";
# phase: connect
# expect: status=error
