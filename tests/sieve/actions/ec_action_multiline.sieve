ec_action 554 "5.7.1 line one
line two";
# phase: connect
# expect: text=line one\nline two
