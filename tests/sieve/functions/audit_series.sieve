$n = audit_series "spam" "60,10" "24" 0 3;
ec_log "${n}";
# phase: connect
# series: spam 60,10 /24 0-3=42
# expect: log=audit_series.sieve:2: 42
