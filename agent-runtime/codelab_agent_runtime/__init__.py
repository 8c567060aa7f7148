"""agent-runtime: runs the agent loop of each session between the gateway and llm-proxy."""
