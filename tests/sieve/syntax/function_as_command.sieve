audit_connections_on_service "/32";
# phase: connect
# expect-compile: 'audit_connections_on_service' is a function
