$h = hash_create;
hash_set $h "a" "1";
hash_set $h "b" "2";
$k = hash_keys $h;
ec_log "${k}";
# phase: connect
# expect: log=keys.sieve:5: a b
