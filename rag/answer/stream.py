"""A streamed answer: iterate it for the text as it is written, then read the finished Answer."""

from __future__ import annotations

from collections.abc import Generator, Iterator

from ..types import Answer


class AnswerStream:
    """`for piece in stream: ...` gives text pieces (str only); `stream.answer` is the verified Answer
    (reading it before the end consumes the rest). An LLM's streamed draft can differ from the final
    text: unsupported sentences are removed and markers renumbered, so show `answer.text` at the end."""

    def __init__(self, run: Generator[str, None, Answer]) -> None:
        self._run = run
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        self._answer = yield from self._run

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer
