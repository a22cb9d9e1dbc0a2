"""`SFTTrainer` with a CPU loss that projects only the assistant tokens through the LM head,
and that trains shared-prefix packs (`toolsft.train.packing`) on any device.

On CPU, TRL's fused LM head scores every position; in tool-calling rows most tokens are the
prompt and tool schemas, so this loss projects only the positions whose next token is
labelled: the same loss (sum over labelled tokens / tokens in the accumulated batch), faster.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import torch
import torch.nn.functional as F
from trl import SFTTrainer

from toolsft.train.packing import PAD_SEGMENT, segment_mask

COMPACT = "toolsft_compact"
"""The forward keyword that asks for the compact logits (see `add_compact_head`)."""


class ToolSFTTrainer(SFTTrainer):
    """SFTTrainer; `compact_lm_head=True` (the CPU default) switches to the loss above."""

    def __init__(
        self,
        *args: Any,
        compact_lm_head: bool = False,
        prefix_grad: bool = True,
        time_budget: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.compact_lm_head = compact_lm_head
        self.prefix_grad = prefix_grad
        self.time_budget = time_budget
        """A `TimeBudget` (`max_time`): the schedule then runs over its time, not the steps."""
        self._pending_metrics: dict[str, list[torch.Tensor]] = {}
        """Per-batch [correct, labelled, tokens] counts on the device, until the next log."""
        model: Any = self.model
        add_compact_head(model.get_base_model() if hasattr(model, "get_base_model") else model)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.time_budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = self.time_budget.scheduler(optimizer or self.optimizer)
        return self.lr_scheduler

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        packed = "segments" in inputs  # shared-prefix packs: the mask comes from the segments
        weights = None
        if not packed and (not self.compact_lm_head or return_outputs or "labels" not in inputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if packed:
            inputs = dict(inputs)
            segments = inputs.pop("segments")
            weights = inputs.pop("weights", None)  # decision_weight (toolsft.train.weights)
            inputs["attention_mask"] = segment_mask(segments)
            real = segments != PAD_SEGMENT
        else:
            real = inputs.get("attention_mask")
        mode = "train" if cast(Any, self.model).training else "eval"
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        kwargs: dict[str, Any] = {
            k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs
        }
        if packed and not self.prefix_grad:
            kwargs["toolsft_prefix_segments"] = segments
        # Through `model` itself (DDP, FSDP, DeepSpeed wrappers): their forward is what syncs
        # gradients across ranks. accelerate's autocast wraps that forward too; entering it here
        # as well covers a model the accelerator has not wrapped.
        with self.accelerator.autocast():
            logits = model(**kwargs, **{COMPACT: mask}).float()
        target = labels[mask]
        if weights is None:
            loss_sum = F.cross_entropy(logits, target, reduction="sum")
        else:
            ce = F.cross_entropy(logits, target, reduction="none")
            loss_sum = (weights[:, 1:][mask].to(ce.dtype) * ce).sum()
        loss = loss_sum / self._loss_divisor(mask, num_items_in_batch, loss_sum.device)
        self._record(mode, logits, target, real)
        return (loss, None) if return_outputs else loss

    def _loss_divisor(self, mask: torch.Tensor, num_items_in_batch: Any, device: Any) -> Any:
        """Transformers' contract for a loss given `num_items_in_batch` (the labelled tokens of
        the whole accumulated batch, summed over ranks): divide by it and multiply by the
        number of ranks, since DDP averages the gradients. Without it: a per-batch mean, which
        the Trainer divides by the accumulation steps itself."""
        if num_items_in_batch is None:
            return mask.sum().clamp(min=1)
        count = torch.as_tensor(num_items_in_batch, device=device).clamp(min=1)
        if self.args.average_tokens_across_devices:
            count = count / (self.accelerator.num_processes // self.get_tp_size())
        return count

    @torch.no_grad()
    def _record(
        self, mode: str, logits: torch.Tensor, target: torch.Tensor, real: torch.Tensor | None
    ) -> None:
        """The metrics TRL logs (token accuracy, tokens seen) from the compact logits, kept on
        the device: `_flush_metrics` reads them when the trainer logs, so the step itself
        never waits for the device. `real` marks the batch's non-padding positions."""
        correct = (logits.argmax(-1) == target).sum()
        n = torch.full_like(correct, target.numel())  # a fill, not a host-to-device copy
        tokens = real.sum() if real is not None else torch.zeros_like(correct)
        self._pending_metrics.setdefault(mode, []).append(torch.stack([correct, n, tokens]).long())

    def _flush_metrics(self) -> None:
        """Turn the recorded batches into TRL's metrics (one device sync for all of them):
        accuracy per batch, summed over ranks, and the running count of training tokens."""
        # Training first: an evaluation's num_tokens is the training count up to it.
        for mode in sorted(self._pending_metrics, key=lambda m: m != "train"):
            pending = self._pending_metrics[mode]
            if not pending:
                continue
            local = torch.stack(pending)  # [batches, 3]
            pending.clear()
            # Every rank recorded the same number of batches: sum each batch over the ranks.
            summed = self.accelerator.gather(local).view(-1, *local.shape).sum(0)
            for correct, n, tokens in summed.tolist():
                self._metrics[mode]["mean_token_accuracy"].append(correct / n if n else 0.0)
                if mode == "train":
                    self._total_train_tokens += tokens
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        self._flush_metrics()
        super().log(logs, start_time)


def add_compact_head(model: Any) -> None:
    """Make `model(..., toolsft_compact=mask)` return the logits of the positions `mask` marks
    (`hidden[:, :-1][mask]` through the LM head) instead of every position's.

    Patched on the model itself, as TRL patches its fused head, so that the call still runs
    through every wrapper around it (PEFT, DDP, FSDP, DeepSpeed, accelerate's autocast).
    `toolsft_prefix_segments` runs each pack's shared prefix without gradient. Without the
    keyword the forward is the original one (generation, evaluation through TRL)."""
    if getattr(model, "_toolsft_compact", False):
        return
    original = model.forward

    @functools.wraps(original)
    def forward(
        *args: Any,
        toolsft_compact: torch.Tensor | None = None,
        toolsft_prefix_segments: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if toolsft_compact is None:
            return original(*args, **kwargs)
        # Looked up on each call: PEFT and FSDP replace modules after the patch.
        backbone = getattr(model, model.base_model_prefix)
        ids: dict[str, Any] = {
            k: kwargs.get(k) for k in ("input_ids", "attention_mask", "position_ids")
        }
        if toolsft_prefix_segments is not None:
            hidden = hidden_with_detached_prefix(backbone, toolsft_prefix_segments, **ids)
        else:
            hidden = backbone(**ids, use_cache=False).last_hidden_state
        return model.get_output_embeddings()(hidden[:, :-1][toolsft_compact])

    model.forward = forward
    model._toolsft_compact = True


def hidden_with_detached_prefix(
    backbone: Any,
    segments: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
) -> torch.Tensor:
    """Last hidden states of each pack, its shared prefix run without gradient.

    The prefix (segment 0, at the start of every pack) goes through the model under no_grad
    and its keys and values become a cache that the rows' suffixes attend to. The forward, and
    so the loss, is the same as one pass over the whole pack; backward skips the prefix, whose
    labels are all masked. What is lost is the gradient that would reach the weights through the
    prefix's own keys and values. Prefix positions come back as zeros (they carry no label).
    One pack at a time: packs in a batch have prefixes of different lengths.
    """
    out = []
    for b in range(input_ids.shape[0]):
        p = int((segments[b] == 0).sum())
        ids, pos, mask = input_ids[b : b + 1], position_ids[b : b + 1], attention_mask[b : b + 1]
        if p == 0:  # nothing shared: the pack is one plain row
            out.append(
                backbone(input_ids=ids, position_ids=pos, attention_mask=mask).last_hidden_state
            )
            continue
        with torch.no_grad():
            cache = backbone(input_ids=ids[:, :p], position_ids=pos[:, :p], use_cache=True)
        hidden = backbone(
            input_ids=ids[:, p:],
            position_ids=pos[:, p:],
            attention_mask=mask[:, :, p:, :],
            past_key_values=cache.past_key_values,
            use_cache=True,
        ).last_hidden_state
        pad = hidden.new_zeros(1, p, hidden.shape[-1])
        out.append(torch.cat([pad, hidden], dim=1))
    return torch.cat(out, dim=0)
