set "1" "x";
# RFC 5229: a variable name starts with a letter or "_"; ${1} is set by
# :matches and :regex only.
# phase: connect
# expect-compile: bad variable name "1" (a match variable: only :matches and :regex set it)
