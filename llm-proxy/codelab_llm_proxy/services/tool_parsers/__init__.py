"""Per-model-family tool-call parsers, registered by name; importing this package registers the built-in ones."""

from codelab_llm_proxy.services.tool_parsers import json_tool_parser as _json_tool_parser  # noqa: F401
from codelab_llm_proxy.services.tool_parsers.base import (
    CallScanner,
    Extraction,
    OfferedTools,
    ParsedToolCall,
    ToolParser,
    get_tool_parser,
    register_tool_parser,
    tool_parser_names,
)
from codelab_llm_proxy.services.tool_parsers.extraction import StreamingToolCallExtractor, extract_into_completion

__all__ = [
    "CallScanner",
    "Extraction",
    "OfferedTools",
    "ParsedToolCall",
    "StreamingToolCallExtractor",
    "ToolParser",
    "extract_into_completion",
    "get_tool_parser",
    "register_tool_parser",
    "tool_parser_names",
]
