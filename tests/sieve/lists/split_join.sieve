$l = split "," "a,b,c";
$s = join "+" $l;
ec_log "${s}";
# phase: connect
# expect: log=split_join.sieve:3: a+b+c
