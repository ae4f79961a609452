if ec_test :value "bigger" "a" "b" { keep; }
# phase: connect
# expect-compile: unknown relation "bigger"
