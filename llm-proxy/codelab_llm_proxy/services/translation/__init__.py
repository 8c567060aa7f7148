"""Pure translations between OpenAI's chat-completions shapes and Anthropic's Messages shapes, and from a stream's
chunks to a whole completion (`openai_chunks`).

No I/O here: the Anthropic provider (OpenAI-shaped request in, Anthropic upstream) and the `/v1/messages` ingress
(Anthropic-shaped request in, any provider) both build on these functions, and tests drive them directly.
"""
