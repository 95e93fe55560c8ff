"""Checking SLO queries against the metrics Prometheus knows, before a run starts.

``metric_names`` reads the metric names a PromQL expression selects with a small lexer (no full
parser): strings, label matchers, label lists, function names, keywords, numbers, durations,
ranges and ``$window`` placeholders are skipped; ``{__name__="x"}`` and the quoted names of
Prometheus 3 (``{"x"}``) select ``x``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from harness.slo._spec import IndicatorKind, SloSpec

# Words the PromQL lexer reads as keywords or aggregators: never metric names.
KEYWORDS = frozenset(
    {
        "and", "or", "unless", "atan2",
        "by", "without", "on", "ignoring", "group_left", "group_right",
        "offset", "bool", "start", "end",
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
        "inf", "nan",
    }
)  # fmt: skip
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

# Series that exist without any exporter declaring them: Prometheus's own per-target series,
# its alert series, and what the blackbox exporter answers on /probe (scraped by probe jobs).
ALWAYS_KNOWN = frozenset(
    {
        "up", "scrape_duration_seconds", "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling", "scrape_series_added",
        "ALERTS", "ALERTS_FOR_STATE",
        "probe_success", "probe_duration_seconds", "probe_failed_due_to_regex",
        "probe_ip_protocol", "probe_ip_addr_hash",
        "probe_dns_lookup_time_seconds", "probe_dns_duration_seconds", "probe_dns_serial",
        "probe_dns_query_succeeded", "probe_dns_answer_rrs", "probe_dns_authority_rrs",
        "probe_dns_additional_rrs",
        "probe_http_status_code", "probe_http_content_length", "probe_http_version",
        "probe_http_uncompressed_body_length", "probe_http_redirects", "probe_http_ssl",
        "probe_http_duration_seconds", "probe_http_last_modified_timestamp_seconds",
        "probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_ssl_last_chain_info", "probe_tls_version_info",
        "probe_icmp_duration_seconds", "probe_icmp_reply_hop_limit",
        "probe_grpc_duration_seconds", "probe_grpc_healthcheck_response", "probe_grpc_ssl",
        "probe_grpc_status_code",
    }
)  # fmt: skip

_QUERY_FIELDS = ("promql", "good", "total")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "string", "number", "punct", "var"
    text: str


def metric_names(promql: str) -> set[str]:
    """Return the names of the metrics ``promql`` selects (``$window`` may still be in it)."""
    return _names(list(_tokens(promql)))


def metric_alternatives(promql: str) -> list[set[str]]:
    """The metric names of each operand of the top-level ``or``s of ``promql`` (one set when
    there is none): ``A or B`` answers with A's series where they exist, else B's, so a query
    may offer a fallback for a source some clusters lack (the kubelet's pod start-up SLI, and
    the scheduler's where no kubelet runs)."""
    tokens = list(_tokens(promql))
    operands: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.text in _CLOSERS:
            depth += 1
        elif token.kind == "punct" and token.text in _CLOSERS.values():
            depth -= 1
        if depth == 0 and token.kind == "ident" and token.text.lower() == "or":
            operands.append([])
        else:
            operands[-1].append(token)
    return [_names(operand) for operand in operands if operand]


def _names(tokens: Sequence[_Token]) -> set[str]:
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.kind == "punct" and token.text in "[{":
            end = _closing(tokens, i)
            if token.text == "{":
                names |= _selected_in_braces(tokens[i + 1 : end])
            i = end + 1
            continue
        if token.kind == "ident":
            word = token.text
            if word.lower() in _LABEL_LISTS and _is(following, "("):
                i = _closing(tokens, i + 1) + 1
                continue
            if word.lower() not in KEYWORDS and not _is(following, "("):
                names.add(word)
        i += 1
    return names


def _is(token: _Token | None, text: str) -> bool:
    return token is not None and token.kind == "punct" and token.text == text


def _closing(tokens: Sequence[_Token], start: int) -> int:
    """Return the index of the bracket closing ``tokens[start]`` (the end if none closes it)."""
    depth = 0
    opener = tokens[start].text
    for j in range(start, len(tokens)):
        if tokens[j].kind != "punct":
            continue
        if tokens[j].text == opener:
            depth += 1
        elif tokens[j].text == _CLOSERS[opener]:
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _selected_in_braces(inside: Sequence[_Token]) -> set[str]:
    """Names selected inside ``{...}``: ``__name__="x"`` or a bare quoted name ``"x"``."""
    names: set[str] = set()
    for matcher in _split(inside):
        texts = [t.text for t in matcher]
        if len(matcher) == 1 and matcher[0].kind == "string":
            names.add(_unquote(matcher[0].text))
        elif (
            len(matcher) == 3
            and texts[:2] in (["__name__", "="], ['"__name__"', "="])
            and matcher[2].kind == "string"
        ):
            names.add(_unquote(matcher[2].text))
    return names


def _split(tokens: Sequence[_Token]) -> list[list[_Token]]:
    parts: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "punct" and token.text == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def _unquote(text: str) -> str:
    body = text[1:-1]
    if text[0] == "`":
        return body
    out, chars = [], iter(body)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char in "\"'`":
            end = _string_end(text, i)
            yield _Token("string", text[i:end])
            i = end
        elif char.isdigit() or (char == "." and i + 1 < n and text[i + 1].isdigit()):
            end = _number_end(text, i)
            yield _Token("number", text[i:end])
            i = end
        elif char.isalpha() or char in "_:":
            end = _word_end(text, i)
            yield _Token("ident", text[i:end])
            i = end
        elif char == "$":
            end = _word_end(text, i + 1)
            yield _Token("var", text[i:end])
            i = max(end, i + 1)
        else:
            two = text[i : i + 2]
            width = 2 if two in ("==", "!=", ">=", "<=", "=~", "!~") else 1
            yield _Token("punct", text[i : i + width])
            i += width


def _string_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)


def _number_end(text: str, start: int) -> int:
    """Numbers, hex numbers, exponents and durations (``5m``, ``1h30m``, ``1.5e-3``)."""
    i = start
    while i < len(text):
        char = text[i]
        exponent_sign = (
            char in "+-" and text[i - 1] in "eE" and not text[start:i].lower().startswith("0x")
        )
        if not (char.isalnum() or char in "._" or exponent_sign):
            break
        i += 1
    return i


def _word_end(text: str, start: int) -> int:
    i = start
    while i < len(text) and (text[i].isalnum() or text[i] in "_:"):
        i += 1
    return i


def unknown_metric_problems(specs: Sequence[SloSpec], known: set[str]) -> list[str]:
    """Return one problem per metric an SLO's query selects that ``known`` does not hold.

    ``known`` is what ``PrometheusClient.metric_names()`` returns once the target is up; the
    synthetic scrape series, alert series and blackbox probe metrics are always known. A query
    whose top-level ``or`` offers alternatives (:func:`metric_alternatives`) passes when one
    alternative's metrics are all known.
    """
    everything = set(known) | ALWAYS_KNOWN
    problems = []
    for spec in specs:
        if spec.indicator.kind is IndicatorKind.SESSIONS_PRESERVED:
            continue
        for field in _QUERY_FIELDS:
            query = getattr(spec.indicator, field)
            missing = [names - everything for names in metric_alternatives(query)]
            if missing and all(missing):
                for name in sorted(set().union(*missing)):
                    problems.append(_problem(spec, field, name, everything))
    return problems


def _problem(spec: SloSpec, field: str, name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.75)
    hint = (
        "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        if close
        else "check the name, and that its exporter is scraped and exposes it."
    )
    where = f"{spec.source}: " if spec.source else ""
    return (
        f"{where}SLO '{spec.name}', field 'indicator.{field}': Prometheus has no series and no "
        f"metadata for the metric '{name}'; {hint}"
    )
