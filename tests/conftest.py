"""Shared fixtures: repo paths and a minimal valid suite that tests can break one way at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHIPPED_SUITES = sorted(
    p.name for p in (REPO / "tool_schemas").iterdir() if (p / "suite.yaml").is_file()
)


def mini_suite_data() -> dict[str, Any]:
    """The smallest suite that exercises every part of the format."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city on a date.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City"},
                        "date": {"type": "string", "format": "date"},
                        "unit": {"type": "string", "enum": ["c", "f"]},
                    },
                    "required": ["city", "date"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_forecast",
                "description": "Multi-day forecast for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    },
                    "required": ["city", "days"],
                },
            },
        },
    ]
    suite = {
        "name": "mini",
        "system": {"zh": "你是天气助手。", "en": "You are a weather assistant."},
        "dates": ["2026-01-01", "2026-02-01"],
        "pools": {
            "city": {
                "values": [
                    {"zh": "北京", "en": "Beijing"},
                    {"zh": "上海", "en": "Shanghai"},
                    {"zh": "广州", "en": "Guangzhou"},
                ],
                "holdout": [{"zh": "成都", "en": "Chengdu"}],
            }
        },
        "irrelevant": {
            "zh": ["讲个笑话"],
            "en": ["Tell me a joke"],
            "holdout": {"zh": ["写首诗"], "en": ["Write a poem"]},
        },
        "no_tool_reply": {
            "zh": ["抱歉，我只能查询天气。"],
            "en": ["Sorry, I can only check the weather."],
        },
        "policy": {
            "forbidden_phrases": ["guaranteed"],
            "pii_patterns": {"card": r"(?<!\d)\d{16}(?!\d)"},
        },
    }
    weather = {
        "tool": "get_weather",
        "confusable": ["get_forecast"],
        "slots": {
            "city": "@city",
            "date": {"relative": True},
            "unit": {
                "say": {
                    "c": {"zh": "摄氏度", "en": "Celsius"},
                    "f": {"zh": "华氏度", "en": "Fahrenheit"},
                }
            },
        },
        "templates": {
            "zh": ["{city}{date}天气怎么样[，用{unit}]", "{date}天气如何"],
            "en": ["What's the weather in {city} {date}[ in {unit}]?", "Weather {date}?"],
            "holdout": {"zh": ["查查{city}{date}的天气"], "en": ["How is {city} looking {date}?"]},
        },
        "ask": {"city": {"zh": "请问是哪个城市？", "en": "Which city?"}},
        "result": {
            "schema": {"type": "object", "properties": {"temp": {"type": "integer"}}},
            "mock": {
                "city": {"arg": "city"},
                "temp": {"integer": [-5, 30]},
                "sky": {"choice": ["sunny", "rain"]},
            },
            "error": {"rate": 0.2, "result": {"error": "NO_DATA", "message": "no data"}},
        },
        "answer": {
            "facts": ["temp", "sky"],
            "display": {
                "sky": {"sunny": {"zh": "晴", "en": "sunny"}, "rain": {"zh": "雨", "en": "rainy"}}
            },
            "zh": ["{city}{sky}，{temp}度。"],
            "en": ["{city}: {sky}, {temp} degrees."],
            "error": {"zh": ["查询失败：{message}"], "en": ["Failed: {message}"]},
        },
    }
    forecast = {
        "tool": "get_forecast",
        "slots": {"city": "@city", "days": {"words": True}},
        "templates": {
            "zh": ["{city}未来{days}天的天气预报"],
            "en": ["{days}-day forecast for {city}"],
            "holdout": {
                "zh": ["给我{city}接下来{days}天的预报"],
                "en": ["Forecast {city}, next {days} days"],
            },
        },
        "result": {"mock": {"summary": {"choice": ["mild", "cold"]}}},
        "answer": {
            "facts": ["summary"],
            "zh": ["{city}未来{days}天：{summary}"],
            "en": ["{city}, {days} days: {summary}"],
        },
    }
    return {
        "tools.json": tools,
        "suite.yaml": suite,
        "tools/get_weather.yaml": weather,
        "tools/get_forecast.yaml": forecast,
    }


def write_suite(root: Path, data: dict[str, Any]) -> Path:
    for rel, content in data.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        elif rel.endswith(".json"):
            path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return root


@pytest.fixture
def mini_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "mini", mini_suite_data())
