$h = hash_create;
hash_set $h "monitor" "300,6";
hash_set $h "period_start" "0";
hash_set $h "period_end" "2";
hash_set $h "mask" "24";
$n = ec_ip_rejections $h;
ec_log "${n}";
# phase: connect
# window: rejections 300,6 0-2 /24=8
# expect: log=ec_ip_rejections_hash.sieve:7: 8
