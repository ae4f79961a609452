$s = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
if ec_test :regex "${s}" "(a+)+$" { keep; }
# phase: connect
# expect: status=error
# expect: code=451
