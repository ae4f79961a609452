$x = nofunc "a";
# phase: connect
# expect-compile: unknown function 'nofunc'
