ec_log "[${1}][${1x}][${0}]";
# Before any match every ${N} is empty; ${1x} is not a reference (RFC 5229:
# neither a number nor a name), so it stays literal text.
# phase: connect
# expect: log=match_vars_unset.sieve:1: [][${1x}][]
