"""Errors raised by runtimes and feature code, free of any HTTP notion."""


class MLError(Exception):
    """Base class of the errors of this package."""


class InvalidInputError(MLError):
    """The input does not match the model's input schema.

    ``problems`` maps each offending field (or ``"file"``, ``"body"``) to what was expected.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))


class UnsupportedFormatError(InvalidInputError):
    """The input is not in a format the model reads (an upload that is not its audio)."""


class ModelRuntimeError(MLError):
    """The model failed while predicting on a valid input."""


def describe_error(error: BaseException) -> str:
    """``Type: message`` for logs, traces and fallback reasons."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
