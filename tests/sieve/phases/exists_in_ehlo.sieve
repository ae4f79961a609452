if exists "x" { keep; }
# phase: ehlo
# expect-compile: 'exists' cannot be used
