if true { keep;
# phase: connect
# expect-compile: 1:1: the block of 'if' is not closed
