if ec_test :regex "a" "(" { keep; }
# phase: connect
# expect-compile: bad regex
