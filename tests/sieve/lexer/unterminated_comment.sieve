keep;
/* never closed
# phase: connect
# expect-compile: 2:1: unterminated /* comment
