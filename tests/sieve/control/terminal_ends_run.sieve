ec_action 554 "go away";
ec_tarpit 5;
# statements after a terminal action do not run [ours]
# phase: connect
# expect: tarpit=0
# expect: code=554
