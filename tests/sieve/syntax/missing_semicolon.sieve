keep
stop;
# phase: connect
# expect-compile: 1:5: expected ';' after 'keep', found 'stop'
