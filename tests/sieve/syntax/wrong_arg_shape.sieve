reject ["a","b"];
# phase: connect
# expect-compile: 1:8: argument 1 of 'reject' must be a string, not a string list
