keep
stop;
# phase: connect
# expect-compile: 2:1: 'keep' takes no test
