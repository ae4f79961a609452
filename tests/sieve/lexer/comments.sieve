# hash comment
/* bracket
 comment */ ec_tarpit 3; # trailing
# phase: connect
# expect: tarpit=3
