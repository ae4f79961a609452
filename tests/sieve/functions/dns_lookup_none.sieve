($r) = ec_dns_lookup "none.example" "TXT";
ec_log "[${r}]";
# no answer: first element ""
# phase: connect
# expect: dns=none.example TXT
# expect: log=dns_lookup_none.sieve:2: []
