"""Write generated rows: JSONL always, plus Hugging Face or ShareGPT (LLaMA-Factory) exports.

Every file is written to a temporary name in its folder and renamed into place, so a crash
never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from toolsft.fastjson import row_of
from toolsft.types import Example, dumps

FORMATS = ("jsonl", "hf", "sharegpt")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    # `dumps` is `json.dumps(r, ensure_ascii=False)`, byte for byte, with the encoder built once.
    return "".join(dumps(r) + "\n" for r in rows)


def write_dataset(
    out: Path,
    rows: Mapping[tuple[int, str], list[Example]],
    manifest: dict[str, Any],
    fmt: str = "jsonl",
) -> dict[str, Any]:
    """Write `stage<N>/<split>.jsonl` (+ the chosen export) and `manifest.json`."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    files: dict[str, str] = {}
    for (stage, split), examples in sorted(rows.items()):
        text = jsonl(row_of(e) for e in examples)
        rel = f"stage{stage}/{split}.jsonl"
        atomic_write(out / rel, text)
        files[rel] = hashlib.sha256(text.encode()).hexdigest()
    if fmt == "sharegpt":
        files.update(write_sharegpt(out, rows))
    manifest = {**manifest, "format": fmt, "files": files}
    atomic_write(out / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    if fmt == "hf":
        write_hf(out, rows)
    return manifest


def write_hf(out: Path, rows: Mapping[tuple[int, str], list[Example]]) -> None:
    """`datasets.DatasetDict.save_to_disk` per stage (tools/meta stay JSON strings)."""
    import datasets

    for stage in sorted({s for s, _ in rows}):
        splits = {
            split: datasets.Dataset.from_list([row_of(e) for e in exs])
            for (s, split), exs in rows.items()
            if s == stage and exs
        }
        datasets.DatasetDict(splits).save_to_disk(str(out / f"stage{stage}" / "hf"))


def to_sharegpt(ex: Example) -> dict[str, Any]:
    """LLaMA-Factory's ShareGPT layout: human/gpt/function_call/observation turns."""
    conv: list[dict[str, str]] = []
    system = ""
    for msg in ex.messages:
        role = msg["role"]
        if role == "system":
            system = str(msg["content"])
        elif role == "user":
            conv.append({"from": "human", "value": str(msg["content"])})
        elif role == "tool":
            conv.append({"from": "observation", "value": str(msg["content"])})
        elif msg.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                for c in msg["tool_calls"]
            ]
            conv.append(
                {
                    "from": "function_call",
                    "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False),
                }
            )
        else:
            conv.append({"from": "gpt", "value": str(msg["content"])})
    tools = json.dumps([t.to_openai()["function"] for t in ex.tools], ensure_ascii=False)
    return {"conversations": conv, "system": system, "tools": tools}


def write_sharegpt(out: Path, rows: Mapping[tuple[int, str], list[Example]]) -> dict[str, str]:
    info: dict[str, Any] = {}
    files: dict[str, str] = {}
    for (stage, split), examples in sorted(rows.items()):
        name = f"toolsft_stage{stage}_{split}"
        rel = f"sharegpt/{name}.json"
        text = json.dumps([to_sharegpt(e) for e in examples], ensure_ascii=False, indent=1) + "\n"
        atomic_write(out / rel, text)
        files[rel] = hashlib.sha256(text.encode()).hexdigest()
        info[name] = {
            "file_name": f"{name}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
        }
    atomic_write(out / "sharegpt" / "dataset_info.json", json.dumps(info, indent=2) + "\n")
    return files


def read_rows(path: Path) -> list[Example]:
    """Read a JSONL split; errors name the file and line."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Example.from_row(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a toolsft row ({exc})") from exc
    return out
