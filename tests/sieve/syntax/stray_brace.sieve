keep;
}
# phase: connect
# expect-compile: 2:1: unexpected '}' with no open block
