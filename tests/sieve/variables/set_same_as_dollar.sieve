set "x" "from-set";
ec_log "${X}";
# set and $x are one variable; names are case-insensitive
# phase: connect
# expect: log=set_same_as_dollar.sieve:2: from-set
