if header :matches "Subject" "*o*" { }
if header :matches "Subject" "zzz*" { }
ec_log "A[${1}][${2}][${10}][${01}]";
if header :matches "Subject" "H?l*" { }
ec_log "C[${0}][${1}][${2}][${3}]";
if header :contains "Subject" "Hell" { }
ec_log "D[${0}][${1}]";
if not header :matches "Subject" "*" { }
ec_log "E[${0}][${1}]";
if header :matches "Subject" "*o*o*" { }
ec_log "H[${0}][${1}][${2}][${3}]";
# RFC 5229 3.2, and what Pigeonhole 2.3.19 prints for the same script: a
# failed test leaves ${N} as they were (A); ${10} is empty and ${01} is ${1};
# a match sets ${0} (the whole value) and one per wildcard, the rest empty (C);
# and :contains sets none (D); the match under a "not" still sets them (E); each
# wildcard takes as little as it can, the last "*" the rest (H).
# phase: data
# header: Subject: Hello World foo
# expect: log=match_vars_matches.sieve:3: A[Hell][ World foo][][Hell]
# expect: log=match_vars_matches.sieve:5: C[Hello World foo][e][lo World foo][]
# expect: log=match_vars_matches.sieve:7: D[Hello World foo][e]
# expect: log=match_vars_matches.sieve:9: E[Hello World foo][Hello World foo]
# expect: log=match_vars_matches.sieve:11: H[Hello World foo][Hell][ W][rld foo]
