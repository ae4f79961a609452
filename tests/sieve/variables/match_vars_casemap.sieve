if ec_test :matches :comparator "i;ascii-casemap" "Hello World" "HELLO*" {
  ec_log "[${0}][${1}]";
}
# The comparator folds case to compare; the variables hold the value's text.
# phase: connect
# expect: log=match_vars_casemap.sieve:2: [Hello World][ World]
