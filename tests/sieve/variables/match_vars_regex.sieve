if header :regex "Subject" "(W)(o)r(l)" { }
ec_log "B[${0}][${1}][${3}][${4}]";
if header :regex "Subject" "(x)|(W)" { }
ec_log "[${0}][${1}][${2}]";
# With :regex, ${0} is what the whole expression matched, ${N} group N (as
# Pigeonhole prints B); a group that took no part is empty.
# phase: data
# header: Subject: Hello World foo
# expect: log=match_vars_regex.sieve:2: B[Worl][W][l][]
# expect: log=match_vars_regex.sieve:4: [W][][W]
