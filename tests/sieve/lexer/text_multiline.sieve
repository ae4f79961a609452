ec_action 451 text:
first
..dot
last
.
;
# multi-line string with dot-unstuffing
# phase: connect
# expect: text=first\n.dot\nlast\n
