ec_disconnect "c1";
# phase: ehlo
# expect: code=421
# expect: counter=ehlo:c1 (4xx)
