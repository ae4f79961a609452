$a = ec_dns_lookup "a.example" "A";
$b = ec_dns_lookup "b.example" "AAAA";
ec_log "${a} ${b}";
# phase: connect
# dns: a.example A=1.1.1.1,2.2.2.2
# dns: b.example AAAA=::1
# expect: log=dns_lookup_several.sieve:3: 1.1.1.1 2.2.2.2 ::1
