set :upper "u" "abc";
set :length "n" "abc";
ec_log "${u} ${n}";
# phase: connect
# expect: log=set_modifiers.sieve:3: ABC 3
