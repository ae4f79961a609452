ec_inc_counter "mycount";
# phase: connect
# expect: counter=connect:mycount (informational)
