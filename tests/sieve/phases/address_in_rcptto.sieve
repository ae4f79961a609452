if address "from" "x" { keep; }
# phase: rcptto
# expect-compile: 'address' cannot be used
