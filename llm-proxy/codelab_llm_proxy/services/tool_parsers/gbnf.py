"""GBNF grammars (llama.cpp's constrained sampling) that keep a small model's tool calls well formed.

The answer is either exactly one call `{"name": <an offered tool>, "arguments": {...}}` or text that cannot be
mistaken for one: it starts with neither `{` nor a code fence (these models also write calls inside fences,
labelled json or not), so an answer that is code begins with a sentence. A small model then cannot invent a tool
name, misspell the call's keys or half-write its JSON.
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
text ::= [^{`\x00-\x20] any* | "`" [^`] any*
any ::= [^\x00]
"""

_CALL = 'call ::= "{" ws "\\"name\\"" ws ":" ws name ws "," ws "\\"arguments\\"" ws ":" ws object ws "}"\n'


def tool_call_grammar(tool_names: list[str], *, allow_text: bool = True) -> str:
    """A grammar for one call to one of `tool_names`, or (with `allow_text`) a plain-text answer."""
    if not tool_names:
        raise ValueError("a tool-call grammar needs at least one tool")
    names = " | ".join(json.dumps(json.dumps(name)) for name in tool_names)
    root = "root ::= call | text\n" if allow_text else "root ::= call\n"
    return root + _CALL + f"name ::= {names}\n" + _JSON + (_TEXT if allow_text else "")
