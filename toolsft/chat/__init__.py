"""The wire format between model and tools: the chat template and its parser.

Training renders conversations with `template.CHAT_TEMPLATE`; evaluation parses model output
with `parse.parse_assistant`. Both live here so that the two can never drift apart
(LLaMA-Factory #6744: a training template that does not match the serving parser).
"""
