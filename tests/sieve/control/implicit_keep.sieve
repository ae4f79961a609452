if false { reject "x"; }
# phase: connect
# expect: action=none
# expect: status=done
