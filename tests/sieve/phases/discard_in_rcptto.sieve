discard;
# phase: rcptto
# expect-compile: 1:1: 'discard' cannot be used in the rcptto phase
