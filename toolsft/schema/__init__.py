"""Load and validate tool suites, validate calls, run the suite's mock executor, check policy."""

from toolsft.schema.errors import SuiteError

__all__ = ["SuiteError"]
