$n = audit_series_add "spam" "60,10" 2;
# phase: connect
# expect: status=done
