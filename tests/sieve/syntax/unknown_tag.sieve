if header :bogus "a" "b" { keep; }
# phase: data
# expect-compile: 1:11: 'header' does not take the tag :bogus
