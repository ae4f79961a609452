# Comments may come before; several requires in a row are all "first".
require "variables";
require ["regex", "relational"];
ec_log "x";
# phase: connect
# expect: log=require_several_first.sieve:4: x
