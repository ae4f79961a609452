if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {if true {}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}
# phase: connect
# expect-compile: nested too deeply (limit max_nesting = 32)
