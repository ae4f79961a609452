if true;
# phase: connect
# expect-compile: 'if' needs a block
