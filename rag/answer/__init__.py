"""Answering one question: clean, rewrite, retrieve, draft, verify, finish (see pipeline)."""
