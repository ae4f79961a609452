ec_log text:
abc
# phase: connect
# expect-compile: unterminated text: string
