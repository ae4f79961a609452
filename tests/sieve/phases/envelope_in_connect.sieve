if envelope "from" "x" { keep; }
# phase: connect
# expect-compile: 'envelope' cannot be used in the connect phase
