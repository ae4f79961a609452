reject "go away";
# phase: mailfrom
# expect: code=550
# expect: enhanced=5.7.1
# expect: text=go away
# expect: counter=mailfrom:reject.sieve:1 (5xx)
