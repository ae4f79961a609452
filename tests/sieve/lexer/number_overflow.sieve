ec_tarpit 99999999999999999999;
# phase: connect
# expect-compile: lexer/number_overflow.sieve:1:11: number too large
