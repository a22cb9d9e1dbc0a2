"""How numbers and dates are said, in Chinese and English."""

from __future__ import annotations

import datetime as dt
import random

_ZH_DIGITS = "零一二三四五六七八九"
_EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WEEKDAYS = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS_EN = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def zh_number(n: int) -> str:
    """Chinese numerals for 0 <= n < 100000000 (两 for a leading 2 in 千/万: 两千)."""
    if n < 10:
        return "两" if n == 2 else _ZH_DIGITS[n]
    if n >= 10000:
        high, low = divmod(n, 10000)
        rest = "" if low == 0 else ("零" if low < 1000 else "") + _zh_under_10k(low)
        head = "两" if high == 2 else _zh_under_10k(high, lead=True)
        return head + "万" + rest
    return _zh_under_10k(n, lead=True)


def _zh_under_10k(n: int, lead: bool = False) -> str:
    units = ((1000, "千"), (100, "百"), (10, "十"))
    out, zero = "", False
    for value, name in units:
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            digit = "两" if d == 2 and value >= 100 and not out else _ZH_DIGITS[d]
            out += "" if (d == 1 and value == 10 and not out and lead) else digit
            out += name
            zero = False
        elif out:
            zero = True
    if n:
        out += ("零" if zero else "") + _ZH_DIGITS[n]
    return out


def en_number(n: int) -> str:
    """English number words for 0 <= n < 1000000."""
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + ("" if ones == 0 else "-" + _EN_ONES[ones])
    if n < 1000:
        h, r = divmod(n, 100)
        return _EN_ONES[h] + " hundred" + ("" if r == 0 else " and " + en_number(r))
    th, r = divmod(n, 1000)
    return (
        en_number(th)
        + " thousand"
        + ("" if r == 0 else (" and " if r < 100 else " ") + en_number(r))
    )


def say_number(n: int, lang: str, rng: random.Random) -> tuple[str, str]:
    """A spoken form of `n` and the augmentation name that made it."""
    if n % 1000 == 0 and n >= 1000 and rng.random() < 0.5:
        if lang == "zh" and n % 10000 == 0:
            return f"{n // 10000}万", "number:wan"
        if lang == "en":
            return f"{n // 1000}k", "number:k"
    if n <= 99999:
        return (zh_number(n) if lang == "zh" else en_number(n)), "number:words"
    return str(n), "number:digits"


def say_date(target: dt.date, today: dt.date, lang: str, rng: random.Random) -> tuple[str, str]:
    """A relative or absolute expression for `target`, resolvable against `today`."""
    delta = (target - today).days
    named = {
        "zh": {0: "今天", 1: "明天", 2: "后天", 3: "大后天"},
        "en": {0: "today", 1: "tomorrow", 2: "the day after tomorrow"},
    }[lang]
    choice = rng.random()
    if delta in named and choice < 0.6:
        return named[delta], "date:relative"
    if 0 < delta <= 13 and choice < 0.8:
        next_week = today + dt.timedelta(days=7 - today.weekday())
        if 0 <= (target - next_week).days < 7:
            wd = WEEKDAYS[lang][target.weekday()]
            return ("下" + wd if lang == "zh" else "next " + wd), "date:weekday"
        if 1 < delta <= 10:
            return (f"{delta}天后" if lang == "zh" else f"in {delta} days"), "date:offset"
    if lang == "zh":
        return f"{target.month}月{target.day}日", "date:absolute"
    return f"{MONTHS_EN[target.month - 1]} {target.day}", "date:absolute"


def say_today(today: dt.date, lang: str) -> str:
    wd = WEEKDAYS[lang][today.weekday()]
    if lang == "zh":
        return f"当前日期：{today.isoformat()}（{wd}）"
    return f"Current date: {today.isoformat()} ({wd})"
