$l = ["a", "b"];
ec_log $l[1];
# phase: connect
# expect: log=element_index.sieve:2: b
