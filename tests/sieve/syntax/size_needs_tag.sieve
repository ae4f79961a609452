if size 10 { keep; }
# phase: data
# expect-compile: 'size' needs :over or :under
