ec_log "%{vctx_conn:k} %{vctx_mess:m}";
# phase: connect
# vctx_conn: k=cv
# vctx_mess: m=mv
# expect: log=macro_vctx.sieve:1: cv mv
