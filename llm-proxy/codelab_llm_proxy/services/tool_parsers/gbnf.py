"""GBNF grammars (llama.cpp's constrained sampling) that keep a small model's tool calls well formed.

The answer is either one call `<tool_call>{"name": <an offered tool>, "arguments": {...}}</tool_call>` (the tags
may be left out; one call, because a 0.5B model allowed several fills its answer with guesses) or text that cannot
be mistaken for one: it starts with neither `{`, `<` nor a code fence, so an answer that is code begins with a
sentence. A small model then cannot invent a tool name, misspell the call's keys or half-write its JSON when it
opens with a call; text that writes a call later (a sentence, then a fenced call) is left to the parser.
"""

from __future__ import annotations

import json

_JSON = r"""
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
value ::= object | array | string | number | "true" | "false" | "null"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] | "\\u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
ws ::= [ \t\n]{0,16}
"""

_TEXT = r"""
text ::= [^{<`\x00-\x20] any* | "`" [^`] any*
any ::= [^\x00]
"""

_CALLS = (
    "calls ::= call\n"
    'call ::= "<tool_call>" ws bare ws "</tool_call>" | bare\n'
    'bare ::= "{" ws "\\"name\\"" ws ":" ws name ws "," ws "\\"arguments\\"" ws ":" ws object ws "}"\n'
)


def tool_call_grammar(tool_names: list[str], *, allow_text: bool = True) -> str:
    """A grammar for calls to `tool_names`, or (with `allow_text`) a plain-text answer."""
    if not tool_names:
        raise ValueError("a tool-call grammar needs at least one tool")
    names = " | ".join(json.dumps(json.dumps(name)) for name in tool_names)
    root = "root ::= calls | text\n" if allow_text else "root ::= calls\n"
    return root + _CALLS + f"name ::= {names}\n" + _JSON + (_TEXT if allow_text else "")
