import json
import random

import pytest

from service.files import chat_schema
from service.files.validation import ChatJSONLValidator, LineError, ValidationResult


def example(*messages: dict, **extra) -> dict:
    return {"messages": list(messages) or [USER, ASSISTANT], **extra}


USER = {"role": "user", "content": "What is 2 + 2?"}
ASSISTANT = {"role": "assistant", "content": "4"}
GOOD = json.dumps(example()).encode()


def jsonl(*rows: dict | bytes, end: bytes = b"\n") -> bytes:
    lines = [row if isinstance(row, bytes) else json.dumps(row, ensure_ascii=False).encode() for row in rows]
    return b"\n".join(lines) + end


def validate(data: bytes, chunk_size: int | None = None, **options) -> ValidationResult:
    validator = ChatJSONLValidator(**options)
    step = chunk_size or max(len(data), 1)
    for start in range(0, len(data), step):
        validator.feed(data[start : start + step])
    return validator.finish()


def the_error(bad_line: bytes, **options) -> LineError:
    """Validates good / bad / good lines and returns the single error, which must be on line 2."""
    result = validate(jsonl(GOOD, bad_line, GOOD), min_examples=2, **options)
    assert result.error_count == 1, result.errors
    assert result.examples == 2
    (error,) = result.errors
    assert error.line == 2
    return error


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


def messages_line(*messages: object, **extra: object) -> bytes:
    return line({"messages": list(messages), **extra})


# OpenAI function-calling pieces: valid for OpenAI, rejected here because training would drop them.
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}
TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


NOT_TRAINED_ON = "this service trains on role, content and weight only"
FUNCTION_CALLING = f"function calling is not supported; {NOT_TRAINED_ON}"


# (bad line, field, text the message must contain); each is the only error in its file.
MALFORMED = {
    # JSON syntax
    "truncated json": (b'{"messages": [', None, "invalid JSON"),
    "trailing comma": (b'{"messages": [{"role": "user", "content": "x"},]}', None, "invalid JSON"),
    "single quotes": (b"{'messages': []}", None, "invalid JSON"),
    "garbage after object": (GOOD + b" x", None, "invalid JSON"),
    "two objects on a line": (GOOD + GOOD, None, "invalid JSON"),
    "raw control char in string": (b'{"messages": [{"role": "user", "content": "a\x01b"}]}', None, "control"),
    "number overflows double": (b'{"messages": [], "weight": 1e400}', None, "infinity"),
    # strictness the stdlib json lacks
    "NaN": (b'{"messages": NaN}', None, "NaN and Infinity"),
    "Infinity": (b'{"messages": [{"role": "assistant", "content": "x", "weight": Infinity}]}', None, "NaN"),
    "-Infinity": (b'{"messages": -Infinity}', None, "NaN and Infinity"),
    "lone high surrogate": (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', None, "unpaired"),
    "lone low surrogate": (b'{"messages": [{"role": "user", "content": "a\\udc00b"}]}', None, "unpaired"),
    "nesting 100 deep": (('{"messages": ' + nested(100) + "}").encode(), None, "nested more than 64"),
    "nesting past orjson's limit": (("[" * 5000 + "]" * 5000).encode(), None, "nested more than 64"),
    "nesting inside content": (
        messages_line(USER, {"role": "assistant", "content": json.loads(nested(70))}),
        None,
        "nested more than 64",
    ),
    # encoding
    "invalid utf-8 byte": (b'{"messages": [{"role": "user", "content": "\xff"}]}', None, "not valid UTF-8"),
    "truncated utf-8 sequence": (b'{"messages": [{"role": "user", "content": "\xc3"}]}', None, "UTF-8"),
    "overlong utf-8": (b'{"messages": [{"role": "user", "content": "\xc0\xaf"}]}', None, "not valid UTF-8"),
    "utf-8 encoded surrogate": (
        b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        None,
        "UTF-8",
    ),
    "latin-1 text": ('{"messages": [{"role": "user", "content": "café"}]}'.encode("latin-1"), None, "UTF-8"),
    "NUL byte": (b'{"messages": []}\x00', None, "NUL"),
    "BOM inside the file": (b"\xef\xbb\xbf" + GOOD, None, "byte-order mark"),
    # line shape
    "blank line": (b"", None, "blank line"),
    "whitespace-only line": (b" \t ", None, "blank line"),
    "CR-only line": (b"\r", None, "blank line"),
    "array line": (b"[1, 2]", None, "must be a JSON object (got an array)"),
    "string line": (b'"hello"', None, "must be a JSON object (got a string)"),
    "number line": (b"42", None, "must be a JSON object (got a number)"),
    "null line": (b"null", None, "must be a JSON object (got null)"),
    # top level
    "missing messages": (b"{}", "messages", "is required"),
    "messages is an object": (line({"messages": {"role": "user"}}), "messages", "must be an array"),
    "messages is a string": (line({"messages": "hi"}), "messages", "got a string"),
    "messages is empty": (line({"messages": []}), "messages", "must not be empty"),
    "unknown top-level key": (line(example(prompt="x")), "prompt", "unknown key"),
    "unknown key with odd name": (line(example(**{"my key": 1})), '["my key"]', "unknown key"),
    # OpenAI fields that training would drop
    "tools": (line(example(tools=[TOOL])), "tools", FUNCTION_CALLING),
    "tools empty": (line(example(tools=[])), "tools", FUNCTION_CALLING),
    "tools before messages": (line({"tools": [TOOL], **example()}), "tools", FUNCTION_CALLING),
    "parallel_tool_calls": (
        line(example(parallel_tool_calls=False)),
        "parallel_tool_calls",
        FUNCTION_CALLING,
    ),
    "tool_calls with null content": (
        messages_line(USER, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}),
        "messages[1].tool_calls",
        FUNCTION_CALLING,
    ),
    "tool_calls without content": (
        messages_line(USER, {"role": "assistant", "tool_calls": [TOOL_CALL]}, ASSISTANT),
        "messages[1].tool_calls",
        FUNCTION_CALLING,
    ),
    "tool_calls with content and weight": (
        messages_line(USER, {**ASSISTANT, "weight": 1, "tool_calls": [TOOL_CALL]}),
        "messages[1].tool_calls",
        FUNCTION_CALLING,
    ),
    "tool_calls on user": (
        messages_line({**USER, "tool_calls": []}, ASSISTANT),
        "messages[0].tool_calls",
        FUNCTION_CALLING,
    ),
    "tool_call_id on tool": (
        messages_line(USER, {"role": "tool", "content": "4", "tool_call_id": "call_1"}, ASSISTANT),
        "messages[1].tool_call_id",
        FUNCTION_CALLING,
    ),
    "tool_call_id on user": (
        messages_line({**USER, "tool_call_id": "c"}, ASSISTANT),
        "messages[0].tool_call_id",
        FUNCTION_CALLING,
    ),
    "name on user": (
        messages_line({**USER, "name": "alice"}, ASSISTANT),
        "messages[0].name",
        f"message names are not supported; {NOT_TRAINED_ON}",
    ),
    "name on assistant": (messages_line(USER, {**ASSISTANT, "name": "bot"}), "messages[1].name", "names"),
    "name on system": (
        messages_line({"role": "system", "content": "s", "name": "x"}, USER, ASSISTANT),
        "messages[0].name",
        "names",
    ),
    "name not a string": (messages_line({**USER, "name": 7}, ASSISTANT), "messages[0].name", "names"),
    "function-calling round trip": (
        messages_line(
            USER,
            {"role": "assistant", "tool_calls": [TOOL_CALL]},
            {"role": "tool", "content": "4", "tool_call_id": "call_1"},
            ASSISTANT,
        ),
        "messages[1].tool_calls",
        FUNCTION_CALLING,
    ),
    "unknown key before a rejected one": (
        messages_line(USER, {**ASSISTANT, "foo": 1, "tool_calls": [TOOL_CALL]}),
        "messages[1].foo",
        "unknown key",
    ),
    # messages
    "message is a string": (
        messages_line(USER, "hi", ASSISTANT),
        "messages[1]",
        "must be an object (got a string)",
    ),
    "wrong role": (messages_line(USER, {"role": "bot", "content": "x"}), "messages[1].role", 'got "bot"'),
    "capitalised role": (
        messages_line({"role": "User", "content": "x"}, ASSISTANT),
        "messages[0].role",
        "User",
    ),
    "legacy function role": (
        messages_line(USER, {"role": "function", "content": "x"}, ASSISTANT),
        "messages[1].role",
        "must be one of system, user, assistant, tool",
    ),
    "missing role": (messages_line({"content": "x"}, ASSISTANT), "messages[0].role", "is required"),
    "role is a number": (messages_line({"role": 1, "content": "x"}, ASSISTANT), "messages[0].role", "got 1"),
    "role is a list": (
        messages_line({"role": ["user"], "content": "x"}, ASSISTANT),
        "messages[0].role",
        "array",
    ),
    "content is a number": (
        messages_line(USER, {"role": "assistant", "content": 4}),
        "messages[1].content",
        "must be a string (got a number)",
    ),
    "content parts list": (
        messages_line({"role": "user", "content": [{"type": "text", "text": "x"}]}, ASSISTANT),
        "messages[0].content",
        "must be a string (got an array)",
    ),
    "content null on user": (
        messages_line({"role": "user", "content": None}, ASSISTANT),
        "messages[0].content",
        "got null",
    ),
    "missing content": (messages_line(USER, {"role": "assistant"}), "messages[1].content", "is required"),
    "assistant content null": (
        messages_line(USER, {"role": "assistant", "content": None}),
        "messages[1].content",
        "got null",
    ),
    "unknown message key": (messages_line(USER, {**ASSISTANT, "foo": 1}), "messages[1].foo", "unknown key"),
    "function_call (legacy)": (
        messages_line(USER, {**ASSISTANT, "function_call": {"name": "f", "arguments": "{}"}}),
        "messages[1].function_call",
        "unknown key",
    ),
    # assistant / weight
    "no assistant message": (
        messages_line(USER, {"role": "system", "content": "x"}),
        "messages",
        "assistant",
    ),
    "all assistants weight 0": (
        messages_line(USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 0}),
        "messages",
        "weight 1",
    ),
    "weight 2": (
        messages_line(USER, {**ASSISTANT, "weight": 2}),
        "messages[1].weight",
        "must be 0 or 1 (got 2)",
    ),
    "weight -1": (messages_line(USER, {**ASSISTANT, "weight": -1}), "messages[1].weight", "got -1"),
    "weight true": (messages_line(USER, {**ASSISTANT, "weight": True}), "messages[1].weight", "got true"),
    "weight false": (
        messages_line(USER, {**ASSISTANT, "weight": False}, ASSISTANT),
        "messages[1].weight",
        "got false",
    ),
    "weight string": (messages_line(USER, {**ASSISTANT, "weight": "1"}), "messages[1].weight", 'got "1"'),
    "weight 0.5": (messages_line(USER, {**ASSISTANT, "weight": 0.5}), "messages[1].weight", "got 0.5"),
    "weight 1.0": (messages_line(USER, {**ASSISTANT, "weight": 1.0}), "messages[1].weight", "got 1.0"),
    "weight null": (messages_line(USER, {**ASSISTANT, "weight": None}), "messages[1].weight", "got null"),
    "weight on user": (
        messages_line({**USER, "weight": 0}, ASSISTANT),
        "messages[0].weight",
        "not allowed on a user message",
    ),
    "weight on system": (
        messages_line({"role": "system", "content": "s", "weight": 1}, USER, ASSISTANT),
        "messages[0].weight",
        "not allowed on a system message",
    ),
}


@pytest.mark.parametrize(("bad", "field", "text"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_line_is_reported_with_line_and_field(bad: bytes, field: str | None, text: str) -> None:
    error = the_error(bad)
    assert error.field == field
    assert text in error.message
    assert str(error).startswith("line 2: " if field is None else f"line 2, {field}: ")


def test_there_are_at_least_thirty_malformed_cases() -> None:
    assert len(MALFORMED) >= 30


def test_first_problem_of_a_line_is_the_one_reported() -> None:
    error = the_error(messages_line({"role": "bot", "content": 1}, {**ASSISTANT, "weight": 5}))
    assert error == LineError(2, "messages[0].role", 'must be one of system, user, assistant, tool (got "bot")')


# -- file-level problems -------------------------------------------------------------------------------------


def test_empty_file() -> None:
    result = validate(b"")
    assert not result.ok
    assert result.errors == [LineError(None, None, "the file is empty")]
    assert result.summary() == "Invalid training file: 1 error. the file is empty."


def test_file_of_one_newline_is_a_blank_line_and_too_few_examples() -> None:
    result = validate(b"\n")
    assert [(e.line, e.field) for e in result.errors] == [(1, None), (None, None)]
    assert "blank line" in result.errors[0].message
    assert result.errors[1].message.startswith("at least 10 examples required, got 0")


def test_too_few_examples() -> None:
    result = validate(jsonl(*[GOOD] * 7))
    assert result.examples == 7
    assert result.errors == [LineError(None, None, "at least 10 examples required, got 7")]


def test_too_few_valid_examples_counts_the_lines() -> None:
    result = validate(jsonl(*[GOOD] * 9, b"[]"))
    assert result.examples == 9
    assert result.errors[-1] == LineError(None, None, "at least 10 examples required, got 9 valid out of 10 lines")


def test_min_examples_is_configurable() -> None:
    assert validate(jsonl(GOOD), min_examples=1).ok
    assert not validate(jsonl(GOOD, GOOD), min_examples=3).ok


def test_utf8_bom_is_reported_on_line_one_and_the_rest_still_checked() -> None:
    result = validate(b"\xef\xbb\xbf" + jsonl(GOOD, GOOD, b"[]", GOOD), min_examples=1)
    assert [(e.line, e.field) for e in result.errors] == [(1, None), (3, None)]
    assert "starts with a UTF-8 byte-order mark" in result.errors[0].message
    assert result.examples == 2  # line 1 is not counted


def test_file_of_only_a_bom() -> None:
    result = validate(b"\xef\xbb\xbf")
    assert [(e.line, e.field) for e in result.errors] == [(1, None), (None, None)]
    assert "byte-order mark" in result.errors[0].message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_files_are_rejected_as_a_whole(encoding: str) -> None:
    data = jsonl(*[GOOD] * 12).decode().encode(encoding)
    for chunk_size in (1, 3, None):
        result = validate(data, chunk_size)
        assert result.error_count == 1
        (error,) = result.errors
        assert (error.line, error.field) == (None, None)
        assert "UTF-16 or UTF-32" in error.message and "must be UTF-8" in error.message


def test_oversized_line_is_reported_and_the_following_lines_keep_their_numbers() -> None:
    long_line = messages_line(USER, {"role": "assistant", "content": "x" * 5000})
    data = jsonl(GOOD, long_line, b"[]", GOOD)
    for chunk_size in (1, 7, 100, 4096, None):
        result = validate(data, chunk_size, max_line_bytes=1000, min_examples=1)
        assert [(e.line, e.field) for e in result.errors] == [(2, None), (3, None)], chunk_size
        assert "longer than the maximum of 1000 bytes" in result.errors[0].message
        assert result.examples == 2


def test_oversized_last_line_without_newline() -> None:
    result = validate(jsonl(GOOD, b"x" * 3000, end=b""), 512, max_line_bytes=1000, min_examples=1)
    assert [(e.line, "longer than" in e.message) for e in result.errors] == [(2, True)]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    padded = GOOD[:-1] + b" " * (200 - len(GOOD)) + b"}"
    assert len(padded) == 200
    assert validate(jsonl(padded), 16, max_line_bytes=200, min_examples=1).ok
    assert not validate(jsonl(padded + b" "), 16, max_line_bytes=200, min_examples=1).ok


def test_oversized_line_is_not_buffered() -> None:
    validator = ChatJSONLValidator(max_line_bytes=1 << 16, min_examples=1)
    validator.feed(GOOD + b"\n")
    chunk = b"y" * 65536
    for _ in range(160):  # a 10 MiB line
        validator.feed(chunk)
        assert len(validator._tail) <= 1 << 16
    validator.feed(b"\n" + GOOD)
    result = validator.finish()
    assert [e.line for e in result.errors] == [2]
    assert result.examples == 2


# -- valid files ---------------------------------------------------------------------------------------------

VALID = {
    "single turn": example(),
    "multi-turn": example(USER, ASSISTANT, {"role": "user", "content": "And 3 + 3?"}, ASSISTANT),
    "system prompt and weight-0 context": example(
        {"role": "system", "content": "You are terse."},
        USER,
        {"role": "assistant", "content": "four", "weight": 0},
        {"role": "user", "content": "digits please"},
        {"role": "assistant", "content": "4", "weight": 1},
    ),
    "tool message": example(USER, {"role": "tool", "content": "x"}, ASSISTANT),
    "tool call written as text": example(
        USER, {"role": "assistant", "content": json.dumps({"tool_calls": [TOOL_CALL]}), "weight": 1}
    ),
    "empty strings": example({"role": "user", "content": ""}, {"role": "assistant", "content": ""}),
    "unicode": example({"role": "user", "content": "héllo wörld € 😀 日本語"}, {"role": "assistant", "content": "ok"}),
    "assistant first": example(ASSISTANT, USER),
    "weight 0 then weight 1 default": example(USER, {**ASSISTANT, "weight": 0}, USER, ASSISTANT),
}


@pytest.mark.parametrize("obj", VALID.values(), ids=VALID.keys())
def test_valid_example(obj: dict) -> None:
    result = validate(jsonl(*[obj] * 10))
    assert result.ok, result.summary()
    assert result.examples == 10
    assert result.summary() == "Valid training file: 10 examples."


@pytest.mark.parametrize(
    ("key", "obj", "field"),
    [
        ("tools", example(tools=[TOOL]), "tools"),
        ("parallel_tool_calls", example(parallel_tool_calls=True), "parallel_tool_calls"),
        ("tool_calls", example(USER, {**ASSISTANT, "tool_calls": [TOOL_CALL]}), "messages[1].tool_calls"),
        (
            "tool_call_id",
            example(USER, {"role": "tool", "content": "4", "tool_call_id": "c"}, ASSISTANT),
            "messages[1].tool_call_id",
        ),
        ("name", example({**USER, "name": "alice"}, ASSISTANT), "messages[0].name"),
    ],
)
def test_openai_only_fields_are_rejected_on_every_line(key: str, obj: dict, field: str) -> None:
    what = "message names are" if key == "name" else "function calling is"
    result = validate(jsonl(*[GOOD] * 2, obj, GOOD, obj), min_examples=3)
    assert result.error_count == 2
    assert [str(e) for e in result.errors] == [
        f"line {n}, {field}: {what} not supported; this service trains on role, content and weight only" for n in (3, 5)
    ]


def test_a_file_in_openais_function_calling_format_is_rejected() -> None:
    row = example(USER, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}, tools=[TOOL])
    result = validate(jsonl(*[row] * 12))
    assert result.examples == 0
    assert result.error_count == 13  # every line, then too few examples
    assert result.errors[0] == LineError(1, "tools", FUNCTION_CALLING)


@pytest.mark.parametrize(
    "data",
    [
        jsonl(*[GOOD] * 10, end=b""),  # no newline at the end
        GOOD.join([b""] + [b"\r\n"] * 10),  # CRLF
        jsonl(*[b"  " + GOOD + b"\t"] * 10),  # whitespace around the object
        jsonl(*[json.dumps(example(), ensure_ascii=True, indent=None, separators=(",", ":")).encode()] * 10),
        jsonl(*[b'{"messages":[{"role":"user","content":"\\ud83d\\ude00 \\u00e9"},' + line(ASSISTANT) + b"]}"] * 10),
    ],
    ids=["no final newline", "crlf", "surrounding whitespace", "compact", "escaped surrogate pair"],
)
def test_valid_file_variants(data: bytes) -> None:
    result = validate(data)
    assert result.ok, result.summary()
    assert result.examples == 10


def test_two_trailing_newlines_make_a_blank_line() -> None:
    result = validate(jsonl(*[GOOD] * 10) + b"\n")
    assert [(e.line, "blank" in e.message) for e in result.errors] == [(11, True)]


# -- streaming -----------------------------------------------------------------------------------------------


def mixed_file() -> bytes:
    multibyte = example({"role": "user", "content": "é€😀" * 50}, {"role": "assistant", "content": "日本語" * 40})
    return jsonl(
        *[multibyte] * 5,
        GOOD,
        b"",
        b'{"messages": [{"role": "user", "content": "\xe2\x82"}]}',  # truncated €
        messages_line(USER, {"role": "assistant", "content": "z" * 3000}),  # over max_line_bytes below
        messages_line(USER, {"role": "bot", "content": "€"}),
        b'{"messages": NaN}',
        *[multibyte] * 5,
        end=b"\r\n",
    )


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_chunking_does_not_change_the_result(prefix: bytes) -> None:
    data = prefix + mixed_file()
    whole = validate(data, None, max_line_bytes=2048, min_examples=12)
    assert [e.line for e in whole.errors] == ([1] if prefix else []) + [7, 8, 9, 10, 11, None]
    assert whole.examples == (10 if prefix else 11)
    for chunk_size in (1, 2, 3, 7, 64 * 1024):
        assert validate(data, chunk_size, max_line_bytes=2048, min_examples=12) == whole, chunk_size


def test_multibyte_character_split_across_chunks() -> None:
    data = jsonl(*[example({"role": "user", "content": "€"}, ASSISTANT)] * 10)
    cut = data.index("€".encode()) + 1
    validator = ChatJSONLValidator()
    validator.feed(data[:cut])
    validator.feed(data[cut:])
    assert validator.finish().ok


def test_bytearray_and_memoryview_chunks() -> None:
    data = jsonl(*[GOOD] * 10)
    validator = ChatJSONLValidator()
    validator.feed(bytearray(data[:30]))
    validator.feed(memoryview(data)[30:])
    assert validator.finish() == validate(data)


def test_random_chunk_boundaries() -> None:
    data = mixed_file()
    expected = validate(data, max_line_bytes=2048)
    rng = random.Random(7)
    for _ in range(20):
        validator = ChatJSONLValidator(max_line_bytes=2048)
        start = 0
        while start < len(data):
            end = start + rng.randint(0, 300)
            validator.feed(data[start:end])
            start = end
        assert validator.finish() == expected


# -- error budget and reporting ------------------------------------------------------------------------------


def test_errors_beyond_max_errors_are_counted_not_kept() -> None:
    data = jsonl(*[GOOD] * 10, *[b"[]"] * 25)
    result = validate(data, max_errors=10)
    assert result.error_count == 25
    assert [e.line for e in result.errors] == list(range(11, 21))
    assert result.summary().endswith("; and 15 more.")


def test_summary_names_the_first_errors() -> None:
    result = validate(jsonl(GOOD, b"{}", messages_line(USER)), min_examples=1)
    assert result.summary() == (
        "Invalid training file: 2 errors. line 2, messages: is required; "
        "line 3, messages: must contain at least one assistant message."
    )


def test_line_error_str() -> None:
    assert str(LineError(3, "messages[0].role", "is required")) == "line 3, messages[0].role: is required"
    assert str(LineError(3, None, "blank line")) == "line 3: blank line"
    assert str(LineError(None, None, "the file is empty")) == "the file is empty"


def test_finish_is_idempotent_and_feed_after_finish_is_a_bug() -> None:
    validator = ChatJSONLValidator(min_examples=1)
    validator.feed(GOOD)
    first = validator.finish()
    assert validator.finish() is first
    with pytest.raises(RuntimeError):
        validator.feed(GOOD)


# -- robustness ----------------------------------------------------------------------------------------------


def test_random_bytes_never_raise() -> None:
    rng = random.Random(0)
    for _ in range(200):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        result = validate(data, rng.choice([1, 5, 64, None]))
        assert not result.ok


def test_mutated_files_never_raise() -> None:
    rng = random.Random(1)
    base = jsonl(*VALID.values(), *(bad for bad, _, _ in MALFORMED.values() if len(bad) < 1000))
    pieces = [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b",",
        b":",
        b"0",
        b"1",
        b"null",
        b"true",
        b'"weight"',
        b"\\",
        b"\xe2",
    ]
    for _ in range(100):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at : at + rng.randint(0, 3)] = rng.choice(pieces)
        validate(bytes(data), rng.choice([7, 64, None]), min_examples=1)


def mutate(obj: object, rng: random.Random) -> object:
    """A copy of a parsed example with one value replaced, or one key added or removed, somewhere inside."""
    values = [
        0,
        1,
        2,
        -1,
        0.5,
        True,
        False,
        None,
        "",
        "x",
        "assistant",
        "user",
        "tool",
        [],
        {},
        [USER],
        ASSISTANT,
    ]
    if isinstance(obj, dict) and obj and rng.random() < 0.7:
        key = rng.choice(list(obj))
        action = rng.random()
        if action < 0.15:
            return {k: v for k, v in obj.items() if k != key}
        if action < 0.3:
            return {
                **obj,
                rng.choice(["weight", "name", "foo", "tool_calls", "tool_call_id"]): rng.choice(values),
            }
        return {**obj, key: mutate(obj[key], rng)}
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        at = rng.randrange(len(obj))
        return [*obj[:at], mutate(obj[at], rng), *obj[at + 1 :]]
    return rng.choice(values)


def test_fast_path_accepts_nothing_the_full_check_rejects() -> None:
    rng = random.Random(2)
    for _ in range(20000):
        obj = rng.choice(list(VALID.values()))
        for _ in range(rng.randint(1, 3)):
            obj = mutate(obj, rng)
        if chat_schema.fast_ok(obj):
            chat_schema.check_example(obj)  # must not raise
