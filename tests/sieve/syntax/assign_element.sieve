$h = hash_create;
$h["k"] = "x";
# A plain assignment to an element is refused when the script is compiled, as
# the destructuring form is (destructure_element.sieve): it was a runtime error.
# phase: connect
# expect-compile: 2:1: cannot assign to an element of $h (use hash_set)
