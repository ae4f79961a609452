$h = hash_create;
hash_set $h "k" "v";
ec_log $h["k"];
# phase: connect
# expect: log=element_hash.sieve:3: v
