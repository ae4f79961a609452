ec_tarpit 1;
stop;
ec_tarpit 5;
# phase: connect
# expect: tarpit=1
# expect: action=none
