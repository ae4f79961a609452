($n) = audit_service "IMAP" "/32";
# phase: connect
# expect: status=error
# expect: code=451
