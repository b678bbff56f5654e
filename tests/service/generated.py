"""Hypothesis strategies for tests/service/test_generated_inputs.py: chat JSONL files with known first problems,
and fine-tuning job bodies with one known broken field.

Every bad line comes with the (field, message fragment) the validator must report for it, computed from the
mutation that made it, so a test can check that an error is precise and not merely present.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

ROLES = ("system", "user", "assistant", "tool")
CONTEXT_ROLES = ("system", "user", "tool")
TEXT = st.text(max_size=12)  # Hypothesis leaves out lone surrogates, which JSON cannot carry raw
NOT_STR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
NOT_WEIGHT = st.one_of(
    st.integers().filter(lambda w: w not in (0, 1)),
    st.integers(10**20, 10**40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@dataclass(frozen=True)
class BadLine:
    data: bytes
    field: str | None
    fragment: str  # text the line's error message must contain


def dumps(obj: Any, *, ascii: bool = False) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii).encode()


@st.composite
def message(draw: st.DrawFn, role: str | None = None) -> dict[str, Any]:
    role = role or draw(st.sampled_from(ROLES))
    out: dict[str, Any] = {"role": role, "content": draw(TEXT)}
    if role == "assistant" and draw(st.booleans()):
        out["weight"] = draw(st.sampled_from([0, 1]))
    return out


@st.composite
def example(draw: st.DrawFn) -> dict[str, Any]:
    messages = draw(st.lists(message(), max_size=3))
    trained: dict[str, Any] = {"role": "assistant", "content": draw(TEXT)}
    if draw(st.booleans()):
        trained["weight"] = 1
    messages.insert(draw(st.integers(0, len(messages))), trained)
    return {"messages": messages}


@st.composite
def bad_message(draw: st.DrawFn) -> tuple[Any, str, str]:
    """(message, field under it, fragment): one message that is wrong in exactly one way."""
    role, text = draw(st.sampled_from(ROLES)), draw(TEXT)
    kind = draw(
        st.sampled_from(
            [
                "no role",
                "no content",
                "wrong role",
                "role type",
                "content type",
                "weight",
                "weight on context",
                "extra key",
                "unsupported key",
                "not an object",
            ]
        )
    )
    if kind == "no role":
        return {"content": text}, ".role", "is required"
    if kind == "no content":
        return {"role": role}, ".content", "is required"
    if kind == "wrong role":
        return (
            {"role": draw(st.text(max_size=8).filter(lambda r: r not in ROLES)), "content": text},
            ".role",
            "must be one of",
        )
    if kind == "role type":
        return {"role": draw(NOT_STR.filter(lambda v: v is not None)), "content": text}, ".role", "must be one of"
    if kind == "content type":
        return {"role": role, "content": draw(NOT_STR)}, ".content", "must be a string"
    if kind == "weight":
        return {"role": "assistant", "content": text, "weight": draw(NOT_WEIGHT)}, ".weight", "must be 0 or 1"
    if kind == "weight on context":
        context = draw(st.sampled_from(CONTEXT_ROLES))
        return {"role": context, "content": text, "weight": 1}, ".weight", f"not allowed on a {context} message"
    if kind == "extra key":
        key = "x_" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
        return {"role": role, "content": text, key: draw(TEXT)}, f".{key}", "unknown key"
    if kind == "unsupported key":
        key = draw(st.sampled_from(["tool_calls", "tool_call_id", "name"]))
        return {"role": role, "content": text, key: draw(TEXT)}, f".{key}", "not supported"
    return draw(NOT_STR.filter(lambda v: not isinstance(v, dict))), "", "must be an object"


@st.composite
def schema_bad_line(draw: st.DrawFn) -> BadLine:
    """Well-formed JSON whose chat schema is broken in one place."""
    obj = draw(example())
    # "message" covers ten mutations, so it is drawn as often as the six others together.
    kind = draw(
        st.sampled_from(
            ["message"] * 6 + ["top key", "no messages", "messages type", "no assistant", "all weight 0", "not object"]
        )
    )
    if kind == "message":
        bad, under, fragment = draw(bad_message())
        at = draw(st.integers(0, len(obj["messages"])))
        obj["messages"].insert(at, bad)
        return BadLine(dumps(obj), f"messages[{at}]{under}", fragment)
    if kind == "top key":
        key = "x_" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
        return BadLine(dumps({**obj, key: draw(TEXT)} if draw(st.booleans()) else {key: 1, **obj}), key, "unknown key")
    if kind == "no messages":
        return BadLine(b"{}", "messages", "is required")
    if kind == "messages type":
        value = draw(st.one_of(NOT_STR.filter(lambda v: not isinstance(v, list)), st.just([])))
        return BadLine(
            dumps({"messages": value}), "messages", "must not be empty" if value == [] else "must be an array"
        )
    if kind == "no assistant":
        messages = draw(st.lists(message(draw(st.sampled_from(CONTEXT_ROLES))), min_size=1, max_size=3))
        return BadLine(dumps({"messages": messages}), "messages", "at least one assistant message")
    if kind == "all weight 0":
        messages = [{"role": "user", "content": draw(TEXT)}, {"role": "assistant", "content": draw(TEXT), "weight": 0}]
        return BadLine(dumps({"messages": messages}), "messages", "weight 1")
    return BadLine(dumps(draw(NOT_STR.filter(lambda v: not isinstance(v, dict)))), None, "must be a JSON object")


def _in_content(line: bytes, insert: bytes) -> bytes:
    """`line` with raw bytes put at the start of its first content string (well past the first 4 bytes)."""
    at = line.index(b'"content": "') + len(b'"content": "')
    return line[:at] + insert + line[at:]


@st.composite
def byte_bad_line(draw: st.DrawFn, max_line_bytes: int) -> BadLine:
    """A line broken below the schema: encoding, JSON syntax, size, nesting."""
    obj = draw(example())
    line = dumps(obj)
    kind = draw(
        st.sampled_from(
            [
                "utf-8",
                "truncated",
                "nul",
                "control",
                "huge number",
                "nan",
                "surrogate",
                "deep",
                "too long",
                "bom",
                "blank",
            ]
        )
    )
    if kind == "utf-8":
        bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xc3", b"\xe2\x82"]))
        return BadLine(_in_content(line, bad), None, "not valid UTF-8")
    if kind == "truncated":
        cut = line[: draw(st.integers(1, len(line) - 1))]
        try:
            cut.decode()
        except UnicodeDecodeError:
            return BadLine(cut, None, "not valid UTF-8")
        return BadLine(cut, None, "invalid JSON")
    if kind == "nul":
        return BadLine(_in_content(line, b"\x00"), None, "NUL")
    if kind == "control":
        return BadLine(_in_content(line, bytes([draw(st.sampled_from([1, 8, 0x1F]))])), None, "invalid JSON")
    if kind == "huge number":
        number = draw(st.sampled_from([b"1e400", b"-1e400", b"1" + b"0" * 400]))
        return BadLine(line[:-1] + b', "x": ' + number + b"}", None, "invalid JSON")
    if kind == "nan":
        value = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        return BadLine(b'{"messages": [{"role": "assistant", "content": "x", "weight": ' + value + b"}]}", None, "NaN")
    if kind == "surrogate":
        return BadLine(_in_content(line, draw(st.sampled_from([b"\\ud800", b"\\udfff"]))), None, "unpaired")
    if kind == "deep":
        depth = draw(st.sampled_from([62, 100, 1100]))  # the message sits at depth 3; 1024 is orjson's own limit
        deep = b'{"messages": [{"role": "assistant", "content": ' + b"[" * depth + b"]" * depth + b"}]}"
        return BadLine(deep, None, "nested more than 64")  # bytes: Python's json would recurse past its own limit
    if kind == "too long":
        return BadLine(_in_content(line, b"a" * max_line_bytes), None, "longer than the maximum")
    if kind == "bom":
        return BadLine(b"\xef\xbb\xbf" + line, None, "byte-order mark")
    return BadLine(draw(st.sampled_from([b"", b" ", b"\t \t"])), None, "blank line")


@dataclass(frozen=True)
class GeneratedFile:
    data: bytes
    first_bad: int | None  # 1-based line number of the first bad line
    bad: BadLine | None


@st.composite
def chat_file(draw: st.DrawFn, max_line_bytes: int, min_examples: int = 10) -> GeneratedFile:
    """min_examples valid lines (or a few more), in ASCII or UTF-8 JSON, with 0–3 bad lines mixed in."""
    ascii = draw(st.booleans())
    lines = [dumps(o, ascii=ascii) for o in draw(st.lists(example(), min_size=min_examples, max_size=min_examples + 3))]
    if draw(st.booleans()):  # spaces around the object are allowed
        lines = [b" " + x + b"\t" for x in lines]
    valid = draw(st.sampled_from([False, False, True]))  # a third of the files are valid
    bad_lines = (
        []
        if valid
        else draw(st.lists(st.one_of(schema_bad_line(), byte_bad_line(max_line_bytes)), min_size=1, max_size=3))
    )
    positions = []
    for bad in bad_lines:
        at = draw(st.integers(0, len(lines)))
        positions = [p + (p >= at) for p in positions] + [at]
        lines.insert(at, bad.data)
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    # Without a final newline a blank last line would be no line at all, so a bad last line always gets one.
    final = end if draw(st.booleans()) or (positions and max(positions) == len(lines) - 1) else b""
    data = end.join(lines) + final
    if not positions:
        return GeneratedFile(data, None, None)
    first = min(positions)
    return GeneratedFile(data, first + 1, bad_lines[positions.index(first)])


# -- job bodies ----------------------------------------------------------------------------------------------

DELETE: Any = object()  # breakage value: drop the field
TEMPLATES: dict[str, Any] = {
    "hyperparameters": {},
    "method": {"type": "supervised", "supervised": {"hyperparameters": {}}},
    "metadata": {},
    "integrations": [{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}],
}
NOT_INT = st.one_of(
    st.booleans(),
    st.text(max_size=4),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
NOT_TEXT = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
NOT_OBJECT = st.one_of(st.booleans(), st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=2))
SAFE_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=16)


def _range_or_type(low: int, high: int, auto: bool = True) -> st.SearchStrategy[Any]:
    outside = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1), st.integers(10**20, 10**30))
    words = st.text(max_size=6).filter(lambda s: s != "auto") if auto else st.text(max_size=6)
    return st.one_of(outside, NOT_INT.filter(lambda v: not isinstance(v, str)), words)


def _lr_breakage() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats(max_value=1e-7, allow_nan=False, allow_infinity=False),
        st.floats(min_value=10.5, allow_infinity=False),
        st.integers(max_value=0),
        st.integers(min_value=11),
        st.booleans(),
        st.text(max_size=4).filter(lambda s: s != "auto"),
    )


def _hyperparameter_breakages(prefix: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]]:
    return [
        ((*prefix,), NOT_OBJECT),
        ((*prefix, "n_epochs"), _range_or_type(1, 50)),
        ((*prefix, "batch_size"), _range_or_type(2, 256)),
        ((*prefix, "learning_rate_multiplier"), _lr_breakage()),
        ((*prefix, "x_" + "unknown"), st.integers()),
    ]


def job_breakages(training: str) -> list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]]:
    """(path of the broken field, what to put there): the 400's `param` must be the path joined by dots."""
    hp = ("method", "supervised", "hyperparameters")
    long_alnum = st.from_regex(r"[A-Za-z0-9]{65,80}", fullmatch=True)
    bad_suffix = st.from_regex(r"[a-z]{0,3}[ .:/!@#\x00][a-z]{0,3}", fullmatch=True)
    return [
        (("model",), st.one_of(NOT_TEXT, st.just(""), st.just("m" * 301), st.just("no-such-model"), st.just(DELETE))),
        (("training_file",), st.one_of(NOT_TEXT, st.just(""), st.just("file-missing"), st.just(DELETE))),
        (
            ("validation_file",),
            st.one_of(NOT_TEXT, st.just(""), st.just("f" * 65), st.just("file-nope"), st.just(training)),
        ),
        (("seed",), st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31), NOT_INT)),
        (("suffix",), st.one_of(NOT_TEXT, long_alnum, bad_suffix)),
        (
            ("metadata",),
            st.one_of(
                NOT_OBJECT,
                st.dictionaries(st.from_regex(r"k[0-9]{1,3}", fullmatch=True), st.just("v"), min_size=17, max_size=20),
            ),
        ),
        (("metadata", "k"), NOT_TEXT),
        (("metadata",), st.builds(lambda n: {"k" * n: "v"}, st.integers(65, 80))),
        (("metadata",), st.builds(lambda n: {"k": "v" * n}, st.integers(513, 600))),
        (
            ("integrations",),
            st.one_of(NOT_OBJECT.filter(lambda v: not isinstance(v, list)), st.just(TEMPLATES["integrations"])),
        ),
        (("integrations",), st.builds(lambda n: TEMPLATES["integrations"] * n, st.integers(17, 20))),
        (("integrations", 0), NOT_OBJECT.filter(lambda v: not isinstance(v, list))),
        (
            ("integrations", 0, "type"),
            st.one_of(NOT_TEXT, st.text(max_size=5).filter(lambda s: s != "wandb"), st.just(DELETE)),
        ),
        (("integrations", 0, "wandb"), st.one_of(NOT_OBJECT, st.just(DELETE))),
        (("integrations", 0, "x_extra"), st.integers()),
        (("integrations", 0, "wandb", "project"), st.one_of(NOT_TEXT, st.just(DELETE), st.just("p" * 257))),
        (
            ("integrations", 0, "wandb", "tags"),
            st.one_of(NOT_OBJECT.filter(lambda v: not isinstance(v, list)), st.just(["t"] * 51)),
        ),
        (("integrations", 0, "wandb", "tags", 0), NOT_TEXT),
        (("method",), NOT_OBJECT),
        (
            ("method", "type"),
            st.one_of(NOT_TEXT, st.sampled_from(["dpo", "reinforcement", "Supervised", ""]), st.just(DELETE)),
        ),
        (("method", "x_extra"), st.integers()),
        (("method", "supervised"), NOT_OBJECT),
        (("method", "supervised", "x_extra"), st.integers()),
        (("method", "dpo"), NOT_OBJECT),
        *_hyperparameter_breakages(hp),
        *_hyperparameter_breakages(("hyperparameters",)),
        (("x_unknown",), st.integers()),
    ]


def valid_optionals(other_file: str) -> dict[str, st.SearchStrategy[Any]]:
    hyperparameters = st.fixed_dictionaries(
        {},
        optional={
            "n_epochs": st.one_of(st.just("auto"), st.integers(1, 50)),
            "batch_size": st.one_of(st.just("auto"), st.integers(2, 256)),
            "learning_rate_multiplier": st.one_of(st.just("auto"), st.floats(1e-6, 10), st.integers(1, 10)),
        },
    )
    return {
        "suffix": st.from_regex(r"[A-Za-z0-9_-]{0,20}", fullmatch=True),
        "seed": st.integers(0, 2**31 - 1),
        "metadata": st.dictionaries(st.from_regex(r"[a-z]{1,10}", fullmatch=True), SAFE_TEXT, max_size=3),
        "hyperparameters": hyperparameters,
        "method": st.just({"type": "supervised"}),
        "validation_file": st.just(other_file),
    }


def put(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set `value` at `path` in `body`, creating the containers on the way from TEMPLATES."""
    if path[0] not in body or not isinstance(body[path[0]], dict | list):
        if len(path) > 1:
            body[path[0]] = copy.deepcopy(TEMPLATES[path[0]])
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


@st.composite
def job_body(draw: st.DrawFn, training: str, other: str) -> tuple[dict[str, Any], str | None]:
    """(body, the param its 400 must name, or None for a body that must create a job)."""
    body: dict[str, Any] = {"model": "tiny-aligned", "training_file": training}
    for name, strategy in valid_optionals(other).items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    if draw(st.integers(0, 4)) == 4:  # Hypothesis leans to small draws: 4 keeps valid bodies a minority
        return body, None
    path, values = draw(st.sampled_from(job_breakages(training)))
    if path[0] in ("method", "hyperparameters"):
        # The other place of the same hyperparameter would conflict and be named instead.
        body.pop("hyperparameters", None)
        body.pop("method", None)
    if path[0] == "validation_file" or path[:2] == ("metadata", "k"):
        body.pop(path[0], None)
    put(body, path, draw(values))
    return body, ".".join(map(str, path))
