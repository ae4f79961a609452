keep;
# phase: connect
# expect: action=keep
# expect: counter=connect:keep.sieve:1 (informational)
