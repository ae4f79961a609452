ec_action 999 "x";
# phase: connect
# expect: status=error
# expect: code=451
# expect: enhanced=4.3.0
# expect: error=ec_action_bad_code.sieve:1: reply code 999 is not between 200 and 599
