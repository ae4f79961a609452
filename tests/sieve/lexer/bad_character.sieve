@ keep;
# phase: connect
# expect-compile: 1:1: unexpected character '@'
