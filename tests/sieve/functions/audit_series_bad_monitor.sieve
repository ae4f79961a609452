$n = audit_series_add "spam" "sixty";
# phase: connect
# expect: status=error
