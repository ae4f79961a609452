# '<', ':' and '@' inside a quoted display name or a comment are text: the
# address is the one in the <...> after them; a '"' in a comment is text too.
if address :is "X-Lt" "c@d.e" { ec_log "lt in quotes"; }
if address :is "X-Colon" "c@d.e" { ec_log "colon in quotes"; }
if address :is "X-Comment" "c@d.e" { ec_log "lt in a comment"; }
if address :count "eq" :comparator "i;ascii-numeric" "X-Lt" "1" { ec_log "one address"; }
if address :is "X-Quote-In-Comment" "evil@spam.com" { ec_log "after a quote in a comment"; }
# phase: data
# header: X-Lt: "a<b" <c@d.e>
# header: X-Colon: "Team: x@y" <c@d.e>
# header: X-Comment: (a<b>) <c@d.e>
# header: X-Quote-In-Comment: friend@ok.com (a"b), evil@spam.com
# expect: log=address_display_name_specials.sieve:3: lt in quotes
# expect: log=address_display_name_specials.sieve:4: colon in quotes
# expect: log=address_display_name_specials.sieve:5: lt in a comment
# expect: log=address_display_name_specials.sieve:6: one address
# expect: log=address_display_name_specials.sieve:7: after a quote in a comment
