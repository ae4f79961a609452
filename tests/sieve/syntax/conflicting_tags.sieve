if header :is :contains "a" "b" { keep; }
# phase: data
# expect-compile: conflicts with an earlier tag
