$r = ec_dns_lookup "slow.example" "MX";
# phase: connect
# dns: slow.example MX=timeout
# expect: action=none
# expect: status=done
