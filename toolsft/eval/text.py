"""Answer quality against a reference: BLEU-4 (sacrebleu) and ROUGE-L (LCS F1).

BLEU is a corpus statistic, so each row contributes its sufficient statistics (lengths and
n-gram matches) and the score is computed from their sum; the bootstrap resamples rows and
re-sums, which is exactly sacrebleu's corpus BLEU on the resample. Tokenization follows the
row's language: sacrebleu's `zh` tokenizer (each CJK character a token) for Chinese, `13a`
otherwise. ROUGE-L is computed here (no extra dependency): characters for Chinese, lower-cased
words otherwise.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

BLEU_ORDER = 4
BLEU_STATS = 2 + 2 * BLEU_ORDER
"""Per-row vector: [hyp_len, ref_len, correct_1..4, total_1..4] (sacrebleu's layout)."""

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=4)
def _tokenizer(lang: str) -> Any:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    return TokenizerZh() if lang == "zh" else Tokenizer13a()


def bleu_stats(hypothesis: str, reference: str, lang: str) -> list[int]:
    """One row's BLEU sufficient statistics (sacrebleu's segment statistics)."""
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    tok = _tokenizer(lang)
    hyp_ngrams, hyp_len = extract_all_word_ngrams(tok(hypothesis.rstrip()), 1, BLEU_ORDER)
    ref_ngrams, ref_len = extract_all_word_ngrams(tok(reference.rstrip()), 1, BLEU_ORDER)
    correct = [0] * BLEU_ORDER
    total = [0] * BLEU_ORDER
    for ngram, count in hyp_ngrams.items():
        n = len(ngram) - 1
        total[n] += count
        if ngram in ref_ngrams:
            correct[n] += min(count, ref_ngrams[ngram])
    return [hyp_len, ref_len, *correct, *total]


def bleu_from_stats(stats: Any) -> float:
    """Corpus BLEU-4 in [0, 1] from summed statistics (sacrebleu's formula, `exp` smoothing)."""
    from sacrebleu.metrics.bleu import BLEU

    s = [float(x) for x in stats]
    if s[0] <= 0:
        return 0.0
    correct = s[2 : 2 + BLEU_ORDER]
    total = s[2 + BLEU_ORDER :]
    score = BLEU.compute_bleu(correct, total, int(s[0]), int(s[1]), smooth_method="exp")
    return float(score.score) / 100.0


def rouge_tokens(text: str, lang: str) -> list[str]:
    if lang == "zh":
        return [c for c in text if not c.isspace()]
    return [w.lower() for w in _WORD.findall(text)]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004).

    One big-int step per token of the longer list, so a 50 kB answer against a short
    reference costs milliseconds, where the cell-by-cell table took seconds.
    """
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for j, y in enumerate(b):
        masks[y] = masks.get(y, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full  # a zero bit marks a column where the LCS grew
    for x in a:
        u = v & masks.get(x, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l(hypothesis: str, reference: str, lang: str) -> float:
    """ROUGE-L F1 (beta = 1) between two texts, in [0, 1]."""
    hyp, ref = rouge_tokens(hypothesis, lang), rouge_tokens(reference, lang)
    if not hyp or not ref:
        return 0.0
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)
