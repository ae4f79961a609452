ec_tarpit "abc";
ec_tarpit 1;
# The default runtime_error is fail: 451 4.3.0 and the phase ends.
# phase: connect
# expect: status=error
# expect: code=451
# expect: enhanced=4.3.0
# expect: tarpit=0
# expect: error=runtime_continue_is_config.sieve:1: the tarpit delay must be a number, not "abc"
