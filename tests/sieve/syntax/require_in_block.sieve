if true {
  require "regex";
}
# phase: connect
# expect-compile: 2:3: 'require' cannot be used inside a block (RFC 5228 3.2)
