$h = hash_create;
$h = hash_set $h "k" "orig";
($h["k"], $b) = ["new", "x"];
($a, $l[0]) = ["y", "z"];
# phase: connect
# expect-compile: 3:2: cannot assign to an element of $h (use hash_set)
# expect-compile: 4:6: cannot assign to an element of $l (use hash_set)
