if anyof true { keep; }
# phase: connect
# expect-compile: 'anyof' needs a list of tests
