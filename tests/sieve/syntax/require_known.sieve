require ["variables", "relational", "comparator-i;ascii-numeric", "envelope", "regex", "reject"];
# phase: connect
# expect: status=done
