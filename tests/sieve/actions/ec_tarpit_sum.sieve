ec_tarpit 5;
ec_tarpit "10";
# tarpits in a phase add up [ours]
# phase: connect
# expect: tarpit=15
# expect: action=none
