ec_log "%{h} %{s}";
# phase: mailfrom
# helo: mx.example
# from: a@b.example
# expect: log=macro_helo_sender.sieve:1: mx.example a@b.example
