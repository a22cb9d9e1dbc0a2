"""The LoRA curriculum: `train_stage` / `train_all` and `export_merged`.

Importing this package is cheap; torch, transformers, peft and trl load on first use.
"""

from toolsft.train.config import ConfigError, TrainConfig, load_config

__all__ = ["ConfigError", "TrainConfig", "export_merged", "load_config", "train_all", "train_stage"]


def __getattr__(name: str):  # lazy: the runner pulls in transformers
    if name in ("train_stage", "train_all"):
        from toolsft.train import runner

        return getattr(runner, name)
    if name == "export_merged":
        from toolsft.train.export import export_merged

        return export_merged
    raise AttributeError(name)
