if header :is "x-h" "spaced" { ec_log "trimmed"; }
if exists "x-h" { ec_log "named"; }
# RFC 5228 5.7: a header test ignores leading and trailing whitespace of the
# value, and "X-H : v" names X-H (as the server reads a message). The fixture
# kept the blanks after the value and before the colon.
# phase: data
# header: X-H :	  spaced  	
# expect: log=header_trailing_blanks.sieve:1: trimmed
# expect: log=header_trailing_blanks.sieve:2: named
