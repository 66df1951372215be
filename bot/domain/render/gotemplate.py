"""Go templates of ApplicationSets (``goTemplate: true``), evaluated by the real Go engine.

Argo CD evaluates each string of an ApplicationSet template with Go's ``text/template`` and
the sprig library (minus ``env``, ``expandenv`` and ``getHostByName``) plus its own
``normalize``, ``slugify``, ``toYaml``, ``fromYaml`` and ``fromYamlArray``. gitops-bot does
not re-implement that language: it hands the templates to the same Go code, embedded in
Helm's engine (PyPI ``helm-python-sdk``: Go ``text/template`` + sprig v3), run sandboxed by
:mod:`bot.render_runtime.gotemplate_runner`. This module holds the pure parts:

- :func:`check_and_rewrite` reads the actions of one template with a lexer that follows Go's
  (strings, raw strings, comments, trim markers), refuses a function Argo CD does not have
  (``function "required" not defined``, as Argo CD's parser says; Helm has ``include``,
  ``tpl``, ``required``, ``lookup``, ``toToml``... that Argo CD has not), and turns calls of
  ``normalize``/``slugify`` into calls of templates defined in :data:`LIBRARY` that do what
  Argo CD's Go functions do;
- :func:`build_chart` packs many templates and many parameter sets into one synthetic chart,
  so a whole ApplicationSet is evaluated in one engine call: each template becomes
  ``{{define}}`` d and is executed with ``{{template "..." $params}}``, which makes both ``.``
  and ``$`` the parameter set, exactly as Argo CD's ``Execute(params)`` does;
- :func:`read_outputs` splits the engine's answer back per parameter set and template.

What differs from Argo CD, by construction of Helm's engine: a missing key prints an empty
string where Go prints ``<no value>`` (Helm removes that text); ``fromJson``/``fromYaml`` on
invalid input give a map with an ``Error`` key instead of failing. ``missingkey=error``
(``goTemplateOptions``) is Go's own option, passed to the engine.

:func:`render_fast` is Argo CD's default fasttemplate (``{{key}}``), simple enough to be exact.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class TemplateError(ValueError):
    """The template cannot be parsed or evaluated (the message is Go's, as Argo CD reports it).

    ``kind`` is what the engine says went wrong: ``"parse"`` (the template is malformed),
    ``"missing_key"`` (it names a key or field the parameters lack: Go's ``missingkey=error``)
    or ``"execute"`` (anything else while evaluating, a time or memory limit included).
    """

    def __init__(self, message: str, kind: str = "execute") -> None:
        super().__init__(message)
        self.kind = kind


class TemplateUnavailable(RuntimeError):
    """The Go template engine cannot run here (not installed, or its sandbox failed)."""


class GoEngine(Protocol):
    """Runs a chart built by :func:`build_chart` and returns Helm's rendered files (or raises)."""

    def render_chart(self, archive: bytes, values: dict[str, Any], *, strict: bool) -> dict[str, str]:
        """Render ``archive`` with ``values``; ``strict`` is Go's ``missingkey=error``.

        Raises :class:`TemplateError` with the engine's message when a template fails, and
        :class:`TemplateUnavailable` when the engine itself cannot run.
        """
        ...


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Go's own functions (text/template) and sprig v3.3.0's GenericFuncMap, as Argo CD loads them:
# minus env, expandenv and getHostByName, plus normalize, slugify, toYaml, fromYaml, fromYamlArray.
GO_BUILTINS = _words(
    """
    and call html index slice js len not or print printf println urlquery eq ge gt le lt ne
    """
)
SPRIG_FUNCS = _words(
    """
    hello ago date date_in_zone date_modify dateInZone dateModify duration durationRound htmlDate
    htmlDateInZone must_date_modify mustDateModify mustToDate now toDate unixEpoch abbrev abbrevboth
    trunc trim upper lower title untitle substr repeat trimall trimAll trimSuffix trimPrefix nospace
    initials randAlphaNum randAlpha randAscii randNumeric swapcase shuffle
    snakecase camelcase kebabcase wrap wrapWith contains hasPrefix hasSuffix quote squote cat indent
    nindent replace plural sha1sum sha256sum sha512sum adler32sum toString atoi int64 int float64
    seq toDecimal split splitList splitn toStrings until untilStep add1 add sub div mod mul randInt
    add1f addf subf divf mulf biggest max min maxf minf ceil floor round join sortAlpha default
    empty coalesce all any compact mustCompact fromJson toJson toPrettyJson toRawJson mustFromJson
    mustToJson mustToPrettyJson mustToRawJson ternary deepCopy mustDeepCopy typeOf typeIs typeIsLike
    kindOf kindIs deepEqual base dir clean ext isAbs osBase osClean osDir osExt osIsAbs b64enc
    b64dec b32enc b32dec tuple list dict get set unset hasKey pluck keys pick omit merge
    mergeOverwrite mustMerge mustMergeOverwrite values append push mustAppend mustPush prepend
    mustPrepend first mustFirst rest mustRest last mustLast initial mustInitial reverse mustReverse
    uniq mustUniq without mustWithout has mustHas slice mustSlice concat dig chunk mustChunk bcrypt
    htpasswd genPrivateKey derivePassword buildCustomCert genCA genCAWithKey genSelfSignedCert
    genSelfSignedCertWithKey genSignedCert genSignedCertWithKey encryptAES decryptAES randBytes
    uuidv4 semver semverCompare fail regexMatch mustRegexMatch regexFindAll mustRegexFindAll
    regexFind mustRegexFind regexReplaceAll mustRegexReplaceAll regexReplaceAllLiteral
    mustRegexReplaceAllLiteral regexSplit mustRegexSplit regexQuoteMeta urlParse urlJoin
    """
)
ARGOCD_EXTRA = frozenset({"normalize", "slugify", "toYaml", "fromYaml", "fromYamlArray"})
ARGOCD_FUNCS = GO_BUILTINS | SPRIG_FUNCS | ARGOCD_EXTRA
KEYWORDS = _words(
    """
    if else end range with define template block break continue nil true false
    """
)
# Rewritten into calls of LIBRARY templates (Helm's engine has no such functions).
_LIBRARY_CALLS = {"normalize": "gitops-bot.normalize", "slugify": "gitops-bot.slugify"}

# Argo CD's SanitizeName (normalize) and SlugifyName (slugify: SanitizeName, then gosimple/slug
# v1.15 Make with MaxLength and EnableSmartTruncate), written in the template language itself.
# slugify receives its arguments as one list: [maxSize [smartTruncate ...]] name.
LIBRARY = """\
{{- define "gitops-bot.normalize" -}}
{{- regexReplaceAll "[^-a-z0-9.]" (lower .) "-" | trunc 253 | trimAll "-." -}}
{{- end -}}
{{- define "gitops-bot.slugify" -}}
{{- $n := len . -}}
{{- $max := 50 -}}{{- $smart := true -}}
{{- if gt $n 1 }}{{ $max = index . 0 }}{{ end -}}
{{- if gt $n 2 }}{{ $smart = index . 1 }}{{ end -}}
{{- if not (kindIs "int" $max) }}{{ fail "slugify: the first argument must be an int" }}{{ end -}}
{{- if not (kindIs "bool" $smart) }}{{ fail "slugify: the second argument must be a bool" }}{{ end -}}
{{- $s := include "gitops-bot.normalize" (index . (sub $n 1)) | trim -}}
{{- if and (not $smart) (ge (len $s) $max) }}{{ $s = substr 0 $max $s }}{{ end -}}
{{- $s = regexReplaceAll "-+" (regexReplaceAll "[^a-zA-Z0-9-_]" $s "-") "-" | trimAll "-_" -}}
{{- if and $smart (gt $max 0) (gt (len $s) $max) -}}
{{- $head := substr 0 (int (add $max 1)) $s -}}
{{- if contains "-" $head }}{{ $s = regexReplaceAll "-[^-]*$" $head "" -}}
{{- else }}{{ $s = substr 0 $max $s }}{{ end -}}
{{- end -}}
{{- $s -}}
{{- end -}}
"""

# ---------------------------------------------------------------- lexer

_INSIDE = re.compile(
    r"""(?P<space>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<num>[+-]?\d[\w.]*(?:[eEpP][+-]\d+)?)
  | (?P<field>\.[\w.]*)
  | (?P<var>\$[\w]*(?:\.[\w]+)*)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<op>:=|[=|(),])
  | (?P<other>.)""",
    re.X | re.S,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _actions(src: str) -> list[list[_Token]]:
    """Return the tokens of each action of ``src`` (positions in ``src``), comments skipped.

    Follows Go's lexer where it matters here: ``{{-``/``-}}`` trim markers (with a space),
    ``}}`` inside strings and raw strings does not end an action, ``{{/* */}}`` is a comment.
    An action that does not end is left for the engine to report.
    """
    out: list[list[_Token]] = []
    pos = 0
    while True:
        start = src.find("{{", pos)
        if start < 0:
            return out
        pos = start + 2
        if src.startswith("- ", pos) or (src.startswith("-", pos) and src[pos + 1 : pos + 2].isspace()):
            pos += 1
        stripped = pos
        while stripped < len(src) and src[stripped].isspace():
            stripped += 1
        if src.startswith("/*", stripped):
            end = src.find("*/", stripped + 2)
            if end < 0:
                return out
            close = src.find("}}", end + 2)
            if close < 0:
                return out
            pos = close + 2
            continue
        tokens: list[_Token] = []
        closed = False
        while pos < len(src):
            if src.startswith("}}", pos):
                pos += 2
                closed = True
                break
            if src.startswith("-}}", pos) and pos > 0 and src[pos - 1].isspace():
                pos += 3
                closed = True
                break
            m = _INSIDE.match(src, pos)
            assert m is not None  # `other` matches any character
            kind = m.lastgroup or "other"
            if kind != "space":
                tokens.append(_Token(kind, m.group(), m.start(), m.end()))
            pos = m.end()
        if not closed:
            return out
        out.append(tokens)


def functions_used(src: str) -> set[str]:
    """Return the names of the functions the actions of ``src`` call (keywords excluded)."""
    return {
        t.text for action in _actions(src) for t in action if t.kind == "ident" and t.text not in KEYWORDS
    }


def check_and_rewrite(src: str) -> str:
    """Refuse what Argo CD would refuse, and route ``normalize``/``slugify`` to :data:`LIBRARY`.

    Raises :class:`TemplateError` for a function Argo CD does not define, and
    :class:`TemplateUnavailable` for ``define``/``block`` (a template of an ApplicationSet
    field defining templates cannot be embedded in another one).
    """
    edits: list[tuple[int, int, str]] = []
    for action in _actions(src):
        for i, tok in enumerate(action):
            if tok.kind != "ident":
                continue
            if tok.text in ("define", "block"):
                raise TemplateUnavailable(f"`{tok.text}` in an ApplicationSet template is not evaluated")
            if tok.text in KEYWORDS:
                continue
            if tok.text not in ARGOCD_FUNCS:
                raise TemplateError(f'function "{tok.text}" not defined')
            if tok.text in _LIBRARY_CALLS:
                edits.append(_library_call(src, action, i))
    for start, end, text in sorted(edits, reverse=True):
        src = src[:start] + text + src[end:]
    return src


def _library_call(src: str, action: list[_Token], i: int) -> tuple[int, int, str]:
    """Return the edit turning the command ``name ARGS`` at ``action[i]`` into a LIBRARY call.

    A command starts the pipeline (``slugify 20 .x``) or follows ``|`` (``.x | slugify 20``),
    where Go appends the piped value as the last argument. ``normalize`` takes its one argument
    as ``include``'s data; ``slugify`` gets all its arguments as one list.
    """
    name = action[i].text
    target = _LIBRARY_CALLS[name]
    piped = i > 0 and action[i - 1].kind == "op" and action[i - 1].text == "|"
    depth = 0
    j = i + 1
    while j < len(action):
        tok = action[j]
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            if depth == 0:
                break
            depth -= 1
        elif tok.kind == "op" and tok.text == "|" and depth == 0:
            break
        j += 1
    args = src[action[i + 1].start : action[j - 1].end] if j > i + 1 else ""
    end = action[j - 1].end if j > i + 1 else action[i].end
    if name == "normalize":
        text = f'include "{target}"' + (f" {args}" if args else "")
    elif piped:
        text = f'append (list {args}) | include "{target}"'
    else:
        text = f'include "{target}" (list {args})'
    return action[i].start, end, text


# ---------------------------------------------------------------- one chart per batch

CHART_NAME = "gitops-bot-appset"


@dataclass(frozen=True, slots=True)
class Batch:
    """A chart that evaluates every template with every parameter set in one engine call."""

    archive: bytes
    values: dict[str, Any]
    separator: str
    templates: tuple[str, ...]
    count: int


def _define_name(j: int) -> str:
    return f"gitops-bot.t{j}"


def build_chart(templates: Sequence[str], params: Sequence[dict[str, Any]]) -> Batch:
    """Pack every template with every parameter set into a chart (see the module docstring)."""
    separator = "\x1egitops-bot:" + secrets.token_hex(8) + "\x1e"
    files = {
        "Chart.yaml": f"apiVersion: v2\nname: {CHART_NAME}\nversion: 0.0.0\n",
        "templates/_library.tpl": LIBRARY,
    }
    for j, text in enumerate(templates):
        files[f"templates/_t{j}.tpl"] = (
            '{{define "' + _define_name(j) + '"}}' + check_and_rewrite(text) + "{{end}}"
        )
    calls = separator.join('{{template "' + _define_name(j) + '" $p}}' for j in range(len(templates)))
    # one file for all parameter sets: each set's outputs end with the separator and "\x1d"
    files["templates/all"] = (
        "{{- range .Values.p }}{{ $p := fromJson . }}" + calls + separator + "\x1d{{ end }}"
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{CHART_NAME}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    values = {"p": [json.dumps(p, default=str) for p in params]}
    return Batch(buf.getvalue(), values, separator, tuple(templates), len(params))


def read_outputs(batch: Batch, rendered: dict[str, str]) -> list[list[str]]:
    """Split the engine's files back into ``[param set][template]`` strings."""
    text = rendered.get(f"{CHART_NAME}/templates/all")
    if text is None:
        raise TemplateUnavailable("the engine returned no output")
    records = text.split(batch.separator + "\x1d")
    if len(records) != batch.count + 1 or records[-1]:
        raise TemplateUnavailable("the engine's output could not be split per parameter set")
    out = [record.split(batch.separator) for record in records[:-1]]
    if any(len(parts) != len(batch.templates) for parts in out):
        raise TemplateUnavailable("the engine's output could not be split per template")
    return out


_WHERE = re.compile(r"(?:" + re.escape(CHART_NAME) + r"/)?templates/(?:_t(\d+)\.tpl|all)(?::\d+)*")


def _short(text: str, limit: int = 160) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def explain_error(batch: Batch, message: str) -> str:
    """Rewrite the engine's message so it names the template text and parameter set, not our files."""

    def where(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return f"template {_short(batch.templates[int(m.group(1))])}"
        return "the ApplicationSet's templates"

    message = re.sub(r'executing "gitops-bot\.t\d+" ', "", _WHERE.sub(where, message))
    for j, text in enumerate(batch.templates):
        message = message.replace(f'"{_define_name(j)}"', _short(text))
    return " ".join(message.split())


def render_many(
    engine: GoEngine, templates: Sequence[str], params: Sequence[dict[str, Any]], *, strict: bool
) -> list[list[str]]:
    """Evaluate every template with every parameter set: ``out[i][j]`` is template j with set i."""
    if not params:
        return []
    todo = sorted({t for t in templates if "{{" in t})
    if not todo:
        return [list(templates) for _ in params]
    batch = build_chart(todo, params)
    try:
        rendered = engine.render_chart(batch.archive, batch.values, strict=strict)
    except TemplateError as exc:
        message = explain_error(batch, str(exc))
        if len(params) > 1 and exc.kind != "parse":
            bad = _first_failing(engine, todo, params, strict=strict)
            message += (
                f" (parameter set {bad + 1} of {len(params)}: {_short(json.dumps(params[bad], default=str))})"
            )
        raise TemplateError(message, exc.kind) from exc
    outputs = read_outputs(batch, rendered)
    index = {t: j for j, t in enumerate(todo)}
    return [[row[index[t]] if t in index else t for t in templates] for row in outputs]


def _first_failing(
    engine: GoEngine, templates: list[str], params: Sequence[dict[str, Any]], *, strict: bool
) -> int:
    """Find, by bisection, the first parameter set the templates fail with (the engine stops at one)."""

    def fails(chunk: Sequence[dict[str, Any]]) -> bool:
        batch = build_chart(templates, chunk)
        try:
            engine.render_chart(batch.archive, batch.values, strict=strict)
        except TemplateError:
            return True
        return False

    lo, hi = 0, len(params)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(params[lo:mid]):
            hi = mid
        else:
            lo = mid
    return lo


_FAST = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def render_fast(template: str, params: dict[str, str]) -> str:
    """Render an Argo CD fasttemplate string: ``{{key}}`` replaced, unknown keys left as they are."""
    if "{{" not in template:
        return template

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        return params[key] if key in params else m.group(0)

    return _FAST.sub(sub, template)
