if ec_test :contains :comparator "i;ascii-numeric" "a" "b" { keep; }
# phase: connect
# expect-compile: i;ascii-numeric cannot be used with :contains
