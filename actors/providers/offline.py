"""`offline:NAME`: a deterministic, scripted stand-in for a model. No network, no key.

It is not a language model and does not pretend to reason. It exists so that every agent,
example and test runs out of the box, and so that failure handling can be exercised on
demand. It reads the conversation the way a model would be prompted and answers in the
expected *shape*:

- a response schema was requested: a JSON object conforming to it;
- tools are offered and the prompt asks to use one (or names one): a call to it, with
  arguments taken from the numbers and words of the prompt; after a tool result, an
  answer that quotes it;
- the system prompt asks for a plan, a critique or review, a verdict, or code: a
  numbered plan, a critique, ``VERDICT: PASS/FAIL`` with reasons, or a fenced code block;
- otherwise a short answer that restates the request.

The same conversation always gets the same answer. Token usage is estimated (about four
characters a token) and flagged ``estimated``. Options (keyword arguments or a query
string: ``offline:default?latency_s=0.2&fail_first_n=2``): ``latency_s`` (seconds per
call; a streamed answer comes word by word, the latency spread over its words),
``fail_first_n`` (the first N calls fail with a retryable 503), ``fail_rate``
(a seeded random fraction of calls fail), ``seed``, and ``quality``.

``quality`` (``offline:small?quality=easy:0.9,medium:0.6,hard:0.2``) makes it answer
arithmetic questions ("What is 3 * (4 + 5)?") correctly with a probability per
difficulty, where the difficulty is the expression's operator count (1 easy, 2 medium,
3 or more hard); otherwise its answer is off by a little. The draw is seeded by the model,
the seed and the question, so a model asked the same question again gives the same answer.
With prices from the price table (``PriceTable({"offline:small": {...}})``) this stands in
for a cheap and a strong model in routing benchmarks (``benchmarks/routing.py``).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import random
import re
from collections.abc import Mapping
from typing import Any

from actors.errors import ProviderError
from actors.providers._base import (
    ModelRequest,
    ModelResponse,
    TextSink,
    TokenUsage,
    ToolCall,
    ToolSpec,
    estimate_tokens,
    pieces,
    streaming_to,
)
from mesh import ConfigError

__all__ = ["DIFFICULTIES", "OfflineProvider"]

#: What `quality` is given per: an expression of 1, 2, 3 or more operators.
DIFFICULTIES = ("easy", "medium", "hard")

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]*")
_EXPRESSION = re.compile(r"[-(\d][\d\s()+*-]*\d\)*")
_OPERATORS = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__}
_TOOL_ASK = re.compile(r"\b(use|call|invoke|run|compute|calculate|look up|search)\b", re.I)


class OfflineProvider:
    """The offline stand-in model (see the module docstring for what it answers)."""

    provider = "offline"

    def __init__(
        self,
        model: str = "default",
        *,
        latency_s: float = 0.0,
        fail_first_n: int = 0,
        fail_rate: float = 0.0,
        seed: int = 0,
        quality: str | Mapping[str, float] | None = None,
    ) -> None:
        """Configure the stand-in.

        Args:
            model: Its name; part of the seed, so two names answer differently.
            latency_s: Seconds each call takes.
            fail_first_n: The first N calls fail with a retryable HTTP 503.
            fail_rate: The fraction of later calls that fail (seeded, so repeatable).
            seed: Seed of the failure draws and of `quality`'s draws.
            quality: Probability of a correct answer to an arithmetic question, per
                difficulty (``easy``, ``medium``, ``hard``): a mapping, or
                ``"easy:0.9,medium:0.6,hard:0.2"``.

        Raises:
            ConfigError: `quality` names another difficulty or a probability outside [0, 1].
        """
        self.model = model
        self.latency_s = latency_s
        self.fail_first_n = fail_first_n
        self.fail_rate = fail_rate
        self.calls = 0
        self.seed = seed
        self.quality = _quality(quality, model)
        self._rng = random.Random(f"{model}:{seed}")

    async def send(self, request: ModelRequest, *, timeout: float) -> ModelResponse:
        """Answer the request after `latency_s`, or fail as configured.

        Raises:
            ProviderError: A configured failure (503, retryable), or `latency_s` is
                longer than `timeout`.
        """
        self.calls += 1
        sink = streaming_to(request)
        if self.latency_s > 0 and (sink is None or self.latency_s > timeout):
            if self.latency_s > timeout:
                await asyncio.sleep(max(0.0, timeout))
                raise ProviderError(
                    f"offline:{self.model} did not answer in time",
                    model=f"offline:{self.model}",
                    retryable=True,
                )
            await asyncio.sleep(self.latency_s)
        failing = self.calls <= self.fail_first_n or (
            self.fail_rate > 0 and self._rng.random() < self.fail_rate
        )
        if failing:
            raise ProviderError(
                f"offline:{self.model} failed on purpose (call {self.calls})",
                model=f"offline:{self.model}",
                status=503,
                retryable=True,
                hint="configured with fail_first_n / fail_rate",
            )
        text, calls, structured = _answer(request, self.model)
        if self.quality and not (calls or structured):
            text = self._arithmetic(request) or text
        if sink is not None:
            await _stream(text, sink, self.latency_s)
        output = text + (structured or "") + "".join(c.arguments for c in calls)
        return ModelResponse(
            text=text,
            tool_calls=calls,
            structured=structured,
            usage=TokenUsage(
                input_tokens=request.size_hint(),
                output_tokens=estimate_tokens(output),
                estimated=True,
            ),
            model=self.model,
            finish_reason="tool_calls" if calls else "stop",
        )

    async def aclose(self) -> None:
        """Nothing to release."""

    def _arithmetic(self, request: ModelRequest) -> str | None:
        """Answer the prompt's arithmetic question, right with the configured probability."""
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        found = _EXPRESSION.search(last_user)
        if found is None:
            return None
        try:
            value, operators = _evaluate(ast.parse(found.group(0).strip(), mode="eval").body)
        except (SyntaxError, ValueError):
            return None
        if operators == 0:
            return None
        difficulty = DIFFICULTIES[min(operators, len(DIFFICULTIES)) - 1]
        key = f"{self.model}:{self.seed}:{found.group(0)}".encode()
        draw = int(hashlib.sha256(key).hexdigest()[:8], 16) / 0x1_0000_0000
        if draw >= self.quality.get(difficulty, 1.0):
            value += 1 + int(draw * 1000) % 9  # wrong, by a little: still a plausible answer
        return f"Answer: {value}"


async def _stream(text: str, sink: TextSink, latency_s: float) -> None:
    # The answer word by word, its latency spread over the words: the first one comes
    # after a share of it, as a model's first token would.
    words = pieces(text) or [text]
    pause = latency_s / len(words)
    for word in words:
        if pause:
            await asyncio.sleep(pause)
        await sink(word)


def _answer(request: ModelRequest, model: str) -> tuple[str, list[ToolCall], str | None]:
    messages = request.messages
    system = "\n".join(m.content for m in messages if m.role == "system").lower()
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    digest = hashlib.sha256(
        json.dumps([model, [m.model_dump() for m in messages]], sort_keys=True).encode()
    ).hexdigest()
    if request.structured is not None:
        value = _from_schema(request.structured.json_schema, last_user, digest, {})
        return "", [], json.dumps(value)
    if messages and messages[-1].role == "tool":
        results = [m for m in messages if m.role == "tool"]
        quoted = "; ".join(f"{m.name or 'tool'} -> {m.content}" for m in results[-3:])
        return f"Using the tool results ({quoted}), the answer is {results[-1].content}.", [], None
    if request.tools and (tool := _wanted_tool(request.tools, last_user)) is not None:
        args = _arguments(tool, last_user, digest)
        return "", [ToolCall(call_id=f"call_{digest[:12]}", name=tool.name, arguments=args)], None
    return _role_answer(system, last_user, digest), [], None


def _wanted_tool(tools: list[ToolSpec], prompt: str) -> ToolSpec | None:
    lowered = prompt.lower()
    for tool in tools:
        if tool.name.lower() in lowered:
            return tool
    return tools[0] if _TOOL_ASK.search(prompt) else None


def _arguments(tool: ToolSpec, prompt: str, digest: str) -> str:
    numbers = [float(n) for n in _NUMBER.findall(prompt)]
    words = [w for w in _WORD.findall(prompt) if w.lower() != tool.name.lower()]
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    args: dict[str, Any] = {}
    for name, schema in properties.items():
        kind = schema.get("type")
        if kind in ("integer", "number") and numbers:
            number = numbers.pop(0)
            args[name] = int(number) if kind == "integer" else number
        elif kind == "string" and "enum" not in schema:
            args[name] = " ".join(words[-6:]) or name
        else:
            args[name] = _from_schema(schema, prompt, digest, tool.parameters.get("$defs", {}))
    return json.dumps(args)


def _from_schema(schema: dict[str, Any], prompt: str, digest: str, defs: dict[str, Any]) -> Any:
    schema, defs = _resolve(schema, defs)
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][int(digest[:4], 16) % len(schema["enum"])]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {
            name: _from_schema(sub, prompt, digest, defs)
            for name, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [_from_schema(schema.get("items", {}), prompt, digest, defs) for _ in range(count)]
    return _scalar(kind, schema, prompt, digest)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Follow ``$ref`` and pick the first non-null branch of ``anyOf`` / ``oneOf`` / ``allOf``."""
    for _ in range(32):  # bounded: a recursive schema must not loop forever
        defs = {**defs, **schema.get("$defs", {})}
        if "$ref" in schema:
            schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
            continue
        branches = next((schema[k] for k in ("anyOf", "oneOf", "allOf") if k in schema), None)
        if not branches:
            break
        schema = next((b for b in branches if b.get("type") != "null"), branches[0])
    return schema, defs


def _scalar(kind: Any, schema: dict[str, Any], prompt: str, digest: str) -> Any:
    scalars: dict[Any, Any] = {
        "integer": max(int(schema.get("minimum", 0)), len(prompt) % 10),
        "number": float(max(schema.get("minimum", 0.0), (int(digest[:4], 16) % 100) / 100)),
        "boolean": True,
        "null": None,
    }
    if kind in scalars:
        return scalars[kind]
    title = str(schema.get("title", "value")).lower()
    return f"{title} for: {_gist(prompt)}"


def _gist(prompt: str, words: int = 12) -> str:
    found = _WORD.findall(prompt)
    text = " ".join(found[:words])
    return text + ("..." if len(found) > words else "")


def _role_answer(system: str, prompt: str, digest: str) -> str:
    gist = _gist(prompt)
    if "plan" in system or "orchestrat" in system:
        return (
            f"Plan for: {gist}\n"
            "1. Clarify the goal and the constraints.\n"
            "2. Gather the facts needed.\n"
            "3. Work out the answer step by step.\n"
            "4. Check the answer against the goal."
        )
    if "verif" in system or "verdict" in system or "safety" in system:
        return f"VERDICT: PASS\nREASONS:\n- The output addresses: {gist}\n- No rule is broken."
    if "critique" in system or "review" in system or "critic" in system:
        return (
            f"Critique of: {gist}\n- Strength: it addresses the request.\n"
            "- Weakness: it could give more evidence.\n- Suggestion: add a concrete example."
        )
    if "code" in system or "program" in system:
        name = "_".join(w.lower() for w in _WORD.findall(prompt)[:3]) or "solution"
        name = re.sub(r"\W", "_", name)
        return (
            f'```python\ndef {name}() -> str:\n    """{gist}"""\n    return {json.dumps(gist)}\n```'
        )
    if "reason" in system or "think" in system:
        return (
            f"Reasoning about: {gist}\n1. Restate the question.\n2. Consider the cases.\n"
            f"Answer: {gist}"
        )
    return f"Answer ({digest[:8]}): {gist}"


def _quality(quality: str | Mapping[str, float] | None, model: str) -> dict[str, float]:
    """Parse ``"easy:0.9,medium:0.6"`` (or check a mapping) into difficulty -> probability."""
    if quality is None:
        return {}
    pairs = (
        quality.items()
        if isinstance(quality, Mapping)
        else (item.partition(":")[::2] for item in quality.split(",") if item.strip())
    )
    parsed: dict[str, float] = {}
    for name, value in pairs:
        try:
            probability = float(value)
        except ValueError:
            probability = -1.0
        if name.strip() not in DIFFICULTIES or not 0 <= probability <= 1:
            raise ConfigError(
                f"offline:{model}: quality {name!s}:{value!s} is not a difficulty and a "
                "probability",
                hint=f"write quality=easy:0.9,medium:0.6,hard:0.2 ({', '.join(DIFFICULTIES)})",
            )
        parsed[name.strip()] = probability
    return parsed


def _evaluate(node: ast.expr) -> tuple[int, int]:
    """Return the value of an integer +, -, * expression and its operator count.

    Raises:
        ValueError: Anything else (names, calls, division...): not an arithmetic question.
    """
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value, 0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value, count = _evaluate(node.operand)
        return -value, count
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, left_count = _evaluate(node.left)
        right, right_count = _evaluate(node.right)
        return _OPERATORS[type(node.op)](left, right), left_count + right_count + 1
    raise ValueError("not integer arithmetic")
