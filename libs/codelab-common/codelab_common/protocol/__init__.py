"""Wire models shared by every service and the terminal client."""

from codelab_common.protocol.agent_api import DONE_EVENT, MESSAGE_EVENT, AgentRequest, StepDone, StepStatus
from codelab_common.protocol.frames import (
    INBOUND_FRAME_TYPES,
    SESSION_ID_PATTERN,
    Ack,
    AssistantMessage,
    ErrorCode,
    ErrorFrame,
    InboundFrame,
    OutboundFrame,
    ToolCall,
    ToolResult,
    UserMessage,
    inbound_frame_adapter,
    outbound_frame_adapter,
)
from codelab_common.protocol.tools import IDE_TOOLS, TOOLS, TOOLS_BY_NAME, ToolSpec, resolve

__all__ = [
    "DONE_EVENT",
    "IDE_TOOLS",
    "INBOUND_FRAME_TYPES",
    "MESSAGE_EVENT",
    "SESSION_ID_PATTERN",
    "TOOLS",
    "TOOLS_BY_NAME",
    "Ack",
    "AgentRequest",
    "AssistantMessage",
    "ErrorCode",
    "ErrorFrame",
    "InboundFrame",
    "OutboundFrame",
    "StepDone",
    "StepStatus",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "UserMessage",
    "inbound_frame_adapter",
    "outbound_frame_adapter",
    "resolve",
]
