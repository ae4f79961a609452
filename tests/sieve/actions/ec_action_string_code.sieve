ec_action "554" "no";
# phase: rcptto
# expect: code=554
# expect: enhanced=5.7.1
