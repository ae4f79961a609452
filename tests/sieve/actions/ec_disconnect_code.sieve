ec_disconnect 554 "5.7.1 bye" "bad";
# phase: ehlo
# expect: code=554
# expect: counter=ehlo:bad (5xx)
# expect: disconnect=yes
