if frob { keep; }
# phase: connect
# expect-compile: 1:4: unknown test 'frob'
