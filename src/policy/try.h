/*
 * try: `mxsieve try`, a rehearsal of one policy phase against fixtures.
 */
#ifndef MX_POLICY_TRY_H
#define MX_POLICY_TRY_H

/* The subcommand's main; argv[0] is "try". Returns the exit status. */
int policy_try_main(int argc, char **argv);

#endif
