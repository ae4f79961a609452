ec_log "%{i} %{ir}";
# phase: connect
# client: 192.0.2.10
# expect: log=macro_ip.sieve:1: 192.0.2.10 10.2.0.192
