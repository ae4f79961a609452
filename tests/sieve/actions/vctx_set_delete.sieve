vctx_conn_set "k" "v";
vctx_conn_delete "gone";
vctx_mess_set "m" "w";
# phase: connect
# vctx_conn: gone=1
# expect: vctx_conn=k=v
# expect-not: vctx_conn=gone=1
# expect: vctx_mess=m=w
