"""Prompt building: templates, demonstrations, truncation that never cuts the question or the gold span."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from qadistill.data.examples import Answer, QAExample
from qadistill.errors import QADistillError
from qadistill.prompts import (
    PromptFormat,
    build_prompt,
    choose_demonstration,
    postprocess_generation,
    target_answer,
    truncate_context,
)


@pytest.fixture(scope="module")
def qwen(qwen_tokenizer_dir):
    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


def _example(i: int, *, answerable: bool = True, lang: str = "en", context: str | None = None) -> QAExample:
    context = context or f"The town of Arlenby{i} was founded in {1700 + i} by the miller Oswin Tarrow."
    answers = (Answer(str(1700 + i), context.index(str(1700 + i))),) if answerable else ()
    return QAExample(f"q{i}", f"article{i % 3}", context, f"When was Arlenby{i} founded?", answers, lang)


def test_plain_zero_shot_prompt_has_context_question_and_abstain_instruction(qwen):
    fmt = PromptFormat(style="plain")
    prompt = build_prompt(_example(1), fmt, qwen)
    assert prompt.endswith(
        "Context: The town of Arlenby1 was founded in 1701 by the miller Oswin Tarrow.\n"
        "Question: When was Arlenby1 founded?\nAnswer:"
    )
    assert '"unanswerable"' in prompt


def test_mlqa_prompt_has_no_abstain_marker_and_german_template(qwen):
    fmt = PromptFormat(lang="de", allow_unanswerable=False, style="plain")
    prompt = build_prompt(_example(2, lang="de"), fmt, qwen)
    assert "Kontext:" in prompt and "Frage:" in prompt and prompt.endswith("Antwort:")
    assert "unbeantwortbar" not in prompt


def test_one_shot_plain_includes_demo_answer_before_question(qwen):
    fmt = PromptFormat(shots=1, style="plain")
    demo = _example(7)
    prompt = build_prompt(_example(1), fmt, qwen, demo)
    assert prompt.index("Arlenby7") < prompt.index("Arlenby1")
    assert "Answer: 1707\n\nContext:" in prompt


def test_one_shot_chat_uses_template_turns(qwen):
    fmt = PromptFormat(shots=1, style="chat")
    prompt = build_prompt(_example(1), fmt, qwen, _example(4, answerable=False))
    assert prompt.count("<|im_start|>user") == 2
    assert "<|im_start|>assistant\nunanswerable<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_one_shot_without_demo_is_an_error(qwen):
    with pytest.raises(QADistillError, match="demonstration"):
        build_prompt(_example(1), PromptFormat(shots=1), qwen)


def test_demonstration_is_deterministic_same_language_and_mixes_kinds():
    pool = [_example(i, answerable=i % 2 == 0) for i in range(20)] + [_example(99, lang="de")]
    question = _example(1000)
    assert choose_demonstration(question, pool, 3) == choose_demonstration(question, pool, 3)
    picks = [choose_demonstration(_example(1000 + i), pool, 0) for i in range(60)]
    assert all(p.lang == "en" for p in picks)
    kinds = {p.is_impossible for p in picks}
    assert kinds == {True, False}
    assert {choose_demonstration(question, pool, s).id for s in range(10)} != {picks[0].id}


def test_demonstration_pool_without_language_is_an_error():
    with pytest.raises(QADistillError, match="'de'"):
        choose_demonstration(_example(1, lang="de"), [_example(2)], 0)


def test_truncation_keeps_question_template_and_answer_span(qwen):
    filler = " ".join(f"Sentence {i} talks about unrelated harbour business." for i in range(200))
    context = filler + " The bridge was built by Mira Kolb in 1888. " + filler
    ex = QAExample("long", "t", context, "Who built the bridge?", (Answer("Mira Kolb", context.index("Mira Kolb")),))
    fmt = PromptFormat(style="plain", max_prompt_tokens=128)
    prompt = build_prompt(ex, fmt, qwen, keep_answer=True)
    assert len(qwen(prompt)["input_ids"]) <= 128
    assert "Mira Kolb" in prompt and prompt.endswith("Question: Who built the bridge?\nAnswer:")
    eval_prompt = build_prompt(ex, fmt, qwen)
    assert eval_prompt.startswith("Answer the question") and "Sentence 0 " in eval_prompt


def test_truncate_context_keeps_span_when_window_is_tiny(qwen):
    context = "aaa bbb ccc ddd eee fff ggg hhh iii jjj kkk"
    start = context.index("ggg")
    cut = truncate_context(qwen, context, 3, (start, start + 3))
    assert "ggg" in cut and len(qwen(cut)["input_ids"]) <= 3


def test_target_and_postprocessing_roundtrip():
    fmt = PromptFormat()
    assert target_answer(_example(3, answerable=False), fmt) == "unanswerable"
    assert target_answer(_example(3), fmt) == "1703"
    assert postprocess_generation(" Unanswerable.\nmore", fmt) == ""
    assert postprocess_generation("  1703 \nQuestion: x", fmt) == "1703"
    de = PromptFormat(lang="de")
    assert postprocess_generation("„Unbeantwortbar“", de) == ""
    with pytest.raises(QADistillError):
        target_answer(_example(3, answerable=False), PromptFormat(allow_unanswerable=False))
