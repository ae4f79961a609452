# A field that ends inside a quote, a comment, a '<' or after a backslash
# still gives its last address (taken from <...> when present).
if address :is "X-Quote" "evil@spam.com" { ec_log "unclosed quote"; }
if address :is "X-Comment" "evil@spam.com" { ec_log "unclosed comment"; }
if address :is "X-Escaped" "evil@spam.com" { ec_log "escaped quote"; }
if address :is "X-Angle" "evil@spam.com" { ec_log "unclosed angle"; }
if address :count "eq" :comparator "i;ascii-numeric" "X-Backslash" "2" { ec_log "trailing backslash"; }
if address :is "X-Backslash" "a@b.c" { ec_log "first of two"; }
# phase: data
# header: X-Quote: <evil@spam.com> "x
# header: X-Comment: evil@spam.com (comment
# header: X-Escaped: "Evil \" <evil@spam.com>
# header: X-Angle: Evil <evil@spam.com
# header: X-Backslash: a@b.c, "evil@spam.com \
# expect: log=address_malformed_end.sieve:3: unclosed quote
# expect: log=address_malformed_end.sieve:4: unclosed comment
# expect: log=address_malformed_end.sieve:5: escaped quote
# expect: log=address_malformed_end.sieve:6: unclosed angle
# expect: log=address_malformed_end.sieve:7: trailing backslash
# expect: log=address_malformed_end.sieve:8: first of two
