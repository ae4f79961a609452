ec_action 451 "4.7.1 later" "greylist";
# phase: rcptto
# expect: code=451
# expect: enhanced=4.7.1
# expect: text=later
# expect: counter=rcptto:greylist (4xx)
