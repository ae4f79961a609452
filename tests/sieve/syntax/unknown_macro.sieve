ec_log "%{zz}";
# phase: connect
# expect-compile: unknown macro %{zz}
