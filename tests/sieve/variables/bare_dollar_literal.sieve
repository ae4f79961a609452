$x = "abc";
ec_log "$x";
# phase: connect
# expect: log=bare_dollar_literal.sieve:2: $x
