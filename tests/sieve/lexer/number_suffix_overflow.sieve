ec_tarpit 17179869184G;
# phase: connect
# expect-compile: number too large
