ec_keep "trusted";
# phase: connect
# expect: action=keep
# expect: keep_reason=trusted
