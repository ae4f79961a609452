if header :is "subject" "x" { keep; }
# phase: connect
# expect-compile: phases/header_in_connect.sieve:1:4: 'header' cannot be used in the connect phase (only from data on)
