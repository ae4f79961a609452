ec_tarpit 5;
ec_action 554 "no";
# phase: connect
# expect: tarpit=5
# expect: code=554
