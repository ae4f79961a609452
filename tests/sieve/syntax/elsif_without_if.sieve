elsif true { keep; }
# phase: connect
# expect-compile: 1:1: 'elsif' without a preceding 'if'
