discard;
# phase: data
# expect: action=discard
# expect: discard=yes
