($a, $b) = ["a"];
$z = "";
ec_log "${a}-[${b}]";
# targets past the list end become unset [ours]
# phase: connect
# expect: log=destructure_short.sieve:3: a-[]
