ec_tarpit 200;
ec_tarpit 200;
# capped by max_tarpit (default 60)
# phase: connect
# expect: tarpit=60
