if not (true, false) { keep; }
# phase: connect
# expect-compile: 'not' needs exactly one test
