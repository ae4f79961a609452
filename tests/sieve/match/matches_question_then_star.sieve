if ec_test :matches "postmaster" "?ello*" { ec_action 250 "yes"; }
ec_action 550 "no";
# RFC 5228 2.7.1: "?" is exactly one character and "ello" is literal, so this is
# false (Pigeonhole 2.3.19 says true; see tests/test_sieve_pigeonhole.py).
# phase: connect
# expect: code=550
