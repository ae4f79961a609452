if envelope :is "from" "sender@example.com" { ec_action 250 "yes"; }
ec_action 550 "no";
# phase: data
# header: From: Alice <alice@example.com>
# header: To: bob@example.org, "Carol" <carol@Example.NET>
# header: Subject: Hello World
# header: X-Spam: 5
# header: X-Spam: 12
# from: sender@example.com
# to: rcpt1@example.org
# to: rcpt2@example.net
# size: 2048
# client: 192.0.2.10
# helo: mail.example.com
# expect: code=250
