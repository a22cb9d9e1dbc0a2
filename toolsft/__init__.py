"""toolsft: turn a small LLM into a reliable tool-calling agent for one domain."""

__version__ = "0.1.0"
