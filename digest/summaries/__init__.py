"""Generated TL;DRs: the chat-completions client (`client`) and the prompt and answer checks
(`prompt`). The stage that decides which papers are summarised, caches and counts is
`digest.pipeline.summarizing`; what a reader is shown is `digest.core.tldr.Tldr`.

This package imports only `digest.config` and `digest.core`, beside `sources` and `store`.
"""

from digest.summaries.client import Answer, ChatClient, retry_after
from digest.summaries.prompt import PROMPT_ID, check_answer, messages, request_body

__all__ = ["PROMPT_ID", "Answer", "ChatClient", "check_answer", "messages", "request_body", "retry_after"]
