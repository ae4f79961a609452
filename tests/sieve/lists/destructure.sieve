($a, $b) = ["a", "b", "c"];
ec_log "${a}-${b}";
# phase: connect
# expect: log=destructure.sieve:2: a-b
