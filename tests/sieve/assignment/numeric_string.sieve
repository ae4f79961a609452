$n = "7";
ec_tarpit "${n}";
# phase: connect
# expect: tarpit=7
