if envelope "to" "x" { keep; }
# phase: mailfrom
# expect-compile: 1:13: envelope "to" cannot be used in the mailfrom phase (only from rcptto on)
