require "nosuch";
# phase: connect
# expect-compile: 1:9: unknown extension "nosuch" in require
