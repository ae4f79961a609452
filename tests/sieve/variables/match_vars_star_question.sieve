if ec_test :matches "postmaster@example.org" "postmas*?e?a???e.???" {
  ec_log "[${1}][${2}][${3}]";
}
# The "*" takes what the rest leaves: "ter" ("postmas" + "ter" + "@" + ...).
# Pigeonhole 2.3.19 says "er" here, one character short of the value
# (tests/test_sieve_pigeonhole.py keeps "?" right after "*" out).
# phase: connect
# expect: log=match_vars_star_question.sieve:2: [ter][@][x]
