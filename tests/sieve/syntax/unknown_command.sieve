frobnicate "x";
# phase: connect
# expect-compile: 1:1: unknown command 'frobnicate'
