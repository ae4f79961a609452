if size :under 1K { ec_action 250 "yes"; }
ec_action 550 "no";
# phase: data
# size: 1000
# expect: code=250
