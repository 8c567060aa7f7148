"""How the JSON-text family is prompted: tools as a listing, a grammar for llama.cpp, the history in native roles."""

from codelab_llm_proxy.services.tool_parsers import get_tool_parser
from codelab_llm_proxy.services.tool_parsers.gbnf import tool_call_grammar

PARSER = get_tool_parser("json")
READ = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {}, "end_line": {}}, "required": ["path"]},
    },
}
WRITE = {"type": "function", "function": {"name": "write_file", "parameters": {"properties": {"path": {}}}}}
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "explain main.py"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "main.py"}'}}
AFTER_RESULT = [
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"content": "print(1)"}'},
]


def test_tools_become_a_listing_in_the_system_message_with_a_grammar() -> None:
    body = {"model": "m", "messages": ASK, "tools": [READ, WRITE], "tool_choice": "auto", "temperature": 0}
    prepared = PARSER.prepare_request(body, constrain=True)
    assert "tools" not in prepared and "tool_choice" not in prepared and prepared["temperature"] == 0
    system = prepared["messages"][0]["content"]
    assert system.startswith("Be brief.\nTools:\n- read_file(path, end_line?): Read a file.\n- write_file(path?)\n")
    assert '<tool_call>\n{"name": "<tool name>", "arguments":' in system
    assert "utils.py" not in system, "no example file name for the model to copy"
    assert prepared["messages"][1:] == ASK[1:]
    assert '"\\"read_file\\"" | "\\"write_file\\""' in prepared["grammar"]
    assert "root ::= calls | text" in prepared["grammar"]
    assert prepared["stop"] == ["<tool_response>"]


def test_the_prompt_is_byte_stable_across_turns() -> None:
    first = PARSER.prepare_request({"messages": ASK, "tools": [READ]}, constrain=True)
    later = PARSER.prepare_request({"messages": AFTER_RESULT, "tools": [READ]}, constrain=True)
    assert first["messages"][0] == later["messages"][0] and first["grammar"] == later["grammar"]


def test_no_grammar_unless_the_model_is_constrained_and_none_without_tools() -> None:
    assert "grammar" not in PARSER.prepare_request({"messages": ASK, "tools": [READ]}, constrain=False)
    assert PARSER.prepare_request({"messages": ASK}, constrain=True) == {"messages": ASK}


def test_a_forced_tool_allows_only_a_call_to_it() -> None:
    choice = {"type": "function", "function": {"name": "write_file"}}
    prepared = PARSER.prepare_request({"messages": ASK, "tools": [READ, WRITE], "tool_choice": choice}, constrain=True)
    assert "read_file" not in prepared["messages"][0]["content"]
    assert prepared["grammar"].startswith("root ::= calls\n") and "text ::=" not in prepared["grammar"]


def test_the_history_keeps_its_native_roles_and_tool_choice_none_only_takes_the_tools_away() -> None:
    prepared = PARSER.prepare_request({"messages": AFTER_RESULT, "tools": [READ]}, constrain=True)
    assert prepared["messages"][1:] == AFTER_RESULT[1:]
    answer_only = PARSER.prepare_request(
        {"messages": AFTER_RESULT, "tools": [READ], "tool_choice": "none", "stop": "END"}, constrain=True
    )
    assert "grammar" not in answer_only and "tools" not in answer_only
    assert answer_only["messages"] == AFTER_RESULT
    assert answer_only["stop"] == ["END", "<tool_response>"]


def test_the_grammar_names_only_offered_tools_and_escapes_them() -> None:
    grammar = tool_call_grammar(["read_file", "git_diff"])
    name_rule = next(line for line in grammar.splitlines() if line.startswith("name ::="))
    assert name_rule == 'name ::= "\\"read_file\\"" | "\\"git_diff\\""'
