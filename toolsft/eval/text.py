"""Answer quality against a reference: BLEU-4 (sacrebleu) and ROUGE-L F1 (rouge-score).

BLEU is a corpus statistic, so each row contributes its sufficient statistics (lengths and
n-gram matches) and the score is computed from their sum; the bootstrap resamples rows and
re-sums, which is exactly sacrebleu's corpus BLEU on the resample. Tokenization follows the
row's language: sacrebleu's `zh` tokenizer (each CJK character a token) for Chinese, `13a`
otherwise. ROUGE-L is rouge-score's, with a tokenizer of our own: its default one drops every
non-ASCII character, which would score every Chinese answer 0.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

BLEU_ORDER = 4
BLEU_STATS = 2 + 2 * BLEU_ORDER
"""Per-row vector: [hyp_len, ref_len, correct_1..4, total_1..4] (sacrebleu's layout)."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0003134f"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
"""A CJK character (kana, hangul) alone, or a run of other word characters."""


@lru_cache(maxsize=4)
def _bleu(lang: str) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize="zh" if lang == "zh" else "13a")


def bleu_stats(hypothesis: str, reference: str, lang: str) -> list[int]:
    """One row's BLEU sufficient statistics: its corpus BLEU's lengths and n-gram counts."""
    s = _bleu(lang).corpus_score([hypothesis], [[reference]])
    return [int(s.sys_len), int(s.ref_len), *map(int, s.counts), *map(int, s.totals)]


def bleu_from_stats(stats: Any) -> float:
    """Corpus BLEU-4 in [0, 1] from summed statistics (sacrebleu's formula, `exp` smoothing)."""
    from sacrebleu.metrics import BLEU

    s = [float(x) for x in stats]
    if s[0] <= 0:
        return 0.0
    correct = s[2 : 2 + BLEU_ORDER]
    total = s[2 + BLEU_ORDER :]
    # sacrebleu annotates the counts as int; summed (resampled) counts arrive here as floats,
    # which its arithmetic treats the same.
    score = BLEU.compute_bleu(correct, total, int(s[0]), int(s[1]), smooth_method="exp")  # type: ignore[arg-type]
    return float(score.score) / 100.0


class CJKTokenizer:
    """rouge-score's tokenizer interface: each CJK character a token, other words lower-cased,
    punctuation dropped; one rule for every language, so mixed text needs no language tag."""

    def tokenize(self, text: str) -> list[str]:
        return [t.lower() for t in _TOKEN.findall(text)]


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], tokenizer=CJKTokenizer())


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) between two texts, in [0, 1]."""
    return float(_rouge().score(reference, hypothesis)["rougeL"].fmeasure)
