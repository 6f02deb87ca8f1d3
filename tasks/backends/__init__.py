"""Generation backends behind one protocol: vLLM in-process, OpenAI-compatible servers, transformers."""
