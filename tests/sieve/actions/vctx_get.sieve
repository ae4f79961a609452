$v = vctx_conn_get "k";
ec_log "${v}";
# phase: connect
# vctx_conn: k=stored
# expect: log=vctx_get.sieve:2: stored
