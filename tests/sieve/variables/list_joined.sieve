$l = ["a", "b", "c"];
ec_log "${l}";
# a list interpolates joined by one space [ours]
# phase: connect
# expect: log=list_joined.sieve:2: a b c
