if header "a" "b" { keep; }
discard;
# phase: connect
# expect-compile: 1:4: 'header'
# expect-compile: 2:1: 'discard'
