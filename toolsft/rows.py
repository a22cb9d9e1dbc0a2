"""The one reader of JSONL dataset files: every split is read line by line through `iter_jsonl`.

Each stage then turns the objects into its own rows (`Example` for scoring, encoded `Row`s for
training); what makes a line unreadable, and how the error reads, is decided here once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolsft.io import DataError


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for every non-blank line of `path`.

    A line that is not UTF-8, not JSON, nested too deeply, or that escapes a lone surrogate
    (which no tokenizer can encode) is a `DataError` naming file and line.
    """
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if raw.strip():
                yield n, parse_line(raw, path, n)


def parse_line(raw: bytes, path: Path, n: int) -> Any:
    try:
        obj = json.loads(raw.decode("utf-8"))
        # A lone surrogate escaped in the JSON ("\ud800") parses, but cannot be encoded.
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", file=path, where=n) from None
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise DataError("not valid UTF-8 text", file=path, where=n, value=bad) from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"invalid JSON: {exc.msg} at column {exc.colno}", file=path, where=n
        ) from None
    except RecursionError:
        raise DataError("JSON nested too deeply", file=path, where=n) from None
    return obj
