($r) = ec_dns_lookup "%{ir}.zen.example" "A";
if ec_test :matches "${r}" "127.0.0.*" { ec_action 554 "5.7.1 listed"; }
# suspends, resumes with the answer
# phase: connect
# client: 192.0.2.10
# dns: 10.2.0.192.zen.example A=127.0.0.2
# expect: dns=10.2.0.192.zen.example A
# expect: code=554
