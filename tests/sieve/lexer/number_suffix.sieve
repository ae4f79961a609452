if size :over 1M { ec_action 250 "yes"; }
ec_action 550 "no";
# phase: data
# size: 2000000
# expect: code=250
