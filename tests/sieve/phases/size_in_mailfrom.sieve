if size :over 1 { keep; }
# phase: mailfrom
# expect-compile: 'size' cannot be used in the mailfrom phase
