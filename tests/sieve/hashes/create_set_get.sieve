$h = hash_create;
$h = hash_set $h "k" "v1";
hash_set $h "k" "v2";
$v = hash_get $h "k";
ec_log "${v}";
# phase: connect
# expect: log=create_set_get.sieve:5: v2
