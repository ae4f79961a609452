ec_log "%{ir}";
# phase: connect
# client: 2001:db8::1
# expect: log=macro_ir_v6.sieve:1: 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2
