ec_disconnect;
# phase: connect
# expect: action=disconnect
# expect: code=421
# expect: enhanced=4.7.0
# expect: text=closing connection
# expect: disconnect=yes
