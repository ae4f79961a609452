bogus1;
keep;
bogus2 "a" "b";
ec_tarpit 1 "x" ec_log "y";
# the parser recovers and reports every error
# phase: connect
# expect-compile: 1:1: unknown command 'bogus1'
# expect-compile: 3:1: unknown command 'bogus2'
# expect-compile: 4:16: expected ';' after 'ec_tarpit', found 'ec_log'
