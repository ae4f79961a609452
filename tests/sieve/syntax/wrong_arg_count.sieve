reject;
# phase: connect
# expect-compile: 1:1: 'reject' takes 1 argument, not 0
