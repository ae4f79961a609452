$a = "x";
$b = $a;
ec_log "${b}";
# phase: connect
# expect: log=copy.sieve:3: x
