/*
 * conf_parse: Momentum's ecelerity.conf stanza syntax, read into a tree.
 *
 * The grammar (a subset that grows with the server):
 *
 *   file    := item*
 *   item    := NAME '=' value [';']           an option
 *            | NAME [arg] '{' item* '}'        a scope, arg a word or string
 *   value   := WORD | STRING | '(' (WORD|STRING) ([','] (WORD|STRING))* ')'
 *   WORD    := bare characters, anything but space and  = { } ( ) , ; " #
 *   STRING  := "..." with \\ \" \n \t \r escapes (\X is X otherwise);
 *              a raw newline inside a string is an error
 *   # to end of line is a comment
 *
 * This layer knows nothing of option names or types: it keeps names as
 * written (callers compare them case-insensitively), and every node carries
 * its line for messages. Errors are collected, formatted "FILE:LINE: msg",
 * and parsing continues at the next line so one run reports many of them.
 */
#ifndef MX_CONF_CONF_PARSE_H
#define MX_CONF_CONF_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* An accumulator of "FILE:LINE: message\n" lines. */
struct conf_errors {
	char *buf;       /* NUL-terminated, NULL while empty */
	size_t len, cap;
	unsigned count;
};

/* Append one error line. line 0 leaves the ":LINE" out. */
void conf_error(struct conf_errors *e, const char *file, unsigned line,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

enum conf_node_kind {
	CONF_NODE_OPTION = 1, /* Name = value or Name = ( list ) */
	CONF_NODE_SCOPE,      /* Name [arg] { children } */
};

struct conf_value {
	char *text;      /* unescaped; may contain any byte but NUL */
	bool quoted;     /* written as "..." */
	unsigned line;
};

struct conf_node {
	enum conf_node_kind kind;
	char *name;                 /* as written */
	unsigned line;              /* of the name */
	/* options */
	bool is_list;               /* written ( ... ), even with one item */
	struct conf_value *values;
	size_t nvalues;
	/* scopes */
	struct conf_value *arg;     /* the scope's argument, or NULL */
	struct conf_node *children; /* first child */
	unsigned end_line;          /* line of the closing brace */
	struct conf_node *next;     /* next sibling */
};

/* Parse `len` bytes of `text`. Returns the list of top-level nodes (NULL for
 * an empty file) and sets *ok to false when any error was added to `errs`;
 * the partial tree is still returned so the caller can free it. `file` names
 * the source in messages. *last_line receives the number of the last line. */
struct conf_node *conf_parse(const char *file, const char *text, size_t len,
                             struct conf_errors *errs, bool *ok,
                             unsigned *last_line);

/* Free a node list and everything below it. */
void conf_node_free(struct conf_node *list);

#endif
