if ec_test :comparator "i;bogus" "a" "b" { keep; }
# phase: connect
# expect-compile: unknown comparator "i;bogus"
