"""Object-level diffs of rendered manifests, secret masking, and the GitHub output.

* :func:`normalize` drops what changes without meaning (``status``, server-set metadata,
  the hash suffix kustomize adds to generated ConfigMaps and Secrets, and references to
  those names) so a diff shows only real changes.
* :func:`mask_secrets` replaces every value of a ``Secret`` (at any depth) by a keyed hash
  (HMAC-SHA256 with a per-installation or per-run key), and private keys and AWS key ids in
  any string (:mod:`bot.domain.masking`): keys stay visible, values never appear, and a
  changed value gives a different hash.
* :func:`diff_objects` compares two object lists by (API group, kind, namespace, name).
* :func:`diff_comment_parts` and :func:`diff_check_output` build the sticky comment and the
  ``gitops-bot/diff`` check-run output, deterministic and under GitHub's size limits.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.domain import escape, yamldump
from bot.domain.masking import mask_object
from bot.domain.masking import secret_token as secret_token  # the one masking rule, re-exported
from bot.domain.model import ObjectChange

if TYPE_CHECKING:
    from bot.domain.dangers import Danger
    from bot.domain.render.result import BlastRow, DiffResult

COMMENT_LIMIT = 65_536
CHECK_TEXT_LIMIT = 65_535
CHECK_SUMMARY_LIMIT = 65_535
CHECK_NAME = "gitops-bot/diff"
MARKER_PREFIX = "<!-- gitops-bot:diff part"

_HASH_SUFFIX = re.compile(r"^(?P<base>.+)-[2456789bcdfghkmt]{10}$")
_NOISE_METADATA = ("generation", "resourceVersion", "uid", "managedFields", "creationTimestamp", "selfLink")
_NOISE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


def mask_secrets(obj: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Return ``obj`` with every Secret value (at any depth) and every flagged string masked.

    See :func:`bot.domain.masking.mask_object`: ``data`` values are base64-decoded first, so
    the same value in ``data`` and in ``stringData`` gets the same hash; the last-applied
    annotation (which could hold a copy) is dropped from Secrets.
    """
    masked: dict[str, Any] = mask_object(obj, key)
    return masked


def _generated_names(objects: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Map hashed names of generated ConfigMaps/Secrets to their names without the suffix."""
    names: dict[str, str] = {}
    for obj in objects:
        if obj.get("kind") not in ("ConfigMap", "Secret"):
            continue
        name = str((obj.get("metadata") or {}).get("name") or "")
        m = _HASH_SUFFIX.match(name)
        if m:
            names[name] = m.group("base")
    return names


def _replace_strings(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {k: _replace_strings(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, names) for v in value]
    return value


def normalize(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop diff noise from rendered objects (see the module docstring); inputs are not modified."""
    names = _generated_names(objects)
    out = []
    for obj in objects:
        obj = {k: v for k, v in obj.items() if k != "status"}
        meta = dict(obj.get("metadata") or {})
        for k in _NOISE_METADATA:
            meta.pop(k, None)
        if isinstance(meta.get("annotations"), dict):
            ann = {k: v for k, v in meta["annotations"].items() if k not in _NOISE_ANNOTATIONS}
            if ann:
                meta["annotations"] = ann
            else:
                meta.pop("annotations")
        obj["metadata"] = meta
        if names:
            obj = _replace_strings(obj, names)
        out.append(obj)
    return out


ObjectKey = tuple[str, str, str, str]


def object_key(obj: dict[str, Any]) -> ObjectKey:
    """Return (API group, kind, namespace, name): an apiVersion bump is a change, not remove+add."""
    api = str(obj.get("apiVersion") or "")
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    return (group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def to_yaml(obj: Any) -> str:
    """Dump ``obj`` as block YAML with keys in a stable order; multi-line strings as ``|`` blocks."""
    return yamldump.dump(obj, sort_keys=True, block_strings=True)


@dataclass(frozen=True, slots=True)
class TargetMeta:
    """Where a target's objects go, for labelling its changes."""

    name: str
    cluster: str
    env: str


def diff_objects(
    target: TargetMeta, base: list[dict[str, Any]], head: list[dict[str, Any]], *, context: int = 3
) -> list[ObjectChange]:
    """Return the changes from ``base`` to ``head`` for one target, sorted by kind, namespace, name.

    Objects are normalised first; an object that appears twice on one side keeps its last copy.
    """
    before = {object_key(o): o for o in normalize(base)}
    after = {object_key(o): o for o in normalize(head)}
    changes: list[ObjectChange] = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[1], k[2], k[3], k[0])):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        old_text = to_yaml(old).splitlines(keepends=True) if old is not None else []
        new_text = to_yaml(new).splitlines(keepends=True) if new is not None else []
        _, kind, ns, name = key
        label = f"{kind}/{ns + '/' if ns else ''}{name}"
        lines = difflib.unified_diff(
            old_text, new_text, fromfile=f"a/{label}", tofile=f"b/{label}", n=context
        )
        text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        action = "added" if old is None else "removed" if new is None else "changed"
        obj = new if new is not None else old
        assert obj is not None
        changes.append(
            ObjectChange(
                target=target.name,
                cluster=target.cluster,
                env=target.env,
                api_version=str(obj.get("apiVersion") or ""),
                kind=kind,
                namespace=ns,
                name=name,
                action=action,  # type: ignore[arg-type]
                diff=text,
            )
        )
    return changes


# ---------------------------------------------------------------- GitHub output

_ICON = {"error": "❌", "warning": "⚠️", "notice": "\u2139\ufe0f"}
MAX_PARTS = 5
FOOTER = (
    "<sub>Rendered offline with kustomize (no plugins, Helm or network); Secret values appear only "
    "as keyed hashes. Reproduce with `gitops-bot check --base {base} --head {head}`.</sub>\n"
)
MAX_CLUSTER_ROWS = 25
_GROUP_LIST = 8


def _short(sha: str) -> str:
    return sha[:7] if sha else "?"


def _md_cell(text: str) -> str:
    return escape.text(text, table=True)


def _fence(body: str, lang: str = "diff") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{body.rstrip(chr(10))}\n{ticks}"


def _counts(changes: Iterable[ObjectChange]) -> tuple[int, int, int]:
    a = c = r = 0
    for ch in changes:
        if ch.action == "added":
            a += 1
        elif ch.action == "changed":
            c += 1
        else:
            r += 1
    return a, c, r


def _count_text(changes: list[ObjectChange]) -> str:
    a, c, r = _counts(changes)
    parts = [f"{n} {word}" for n, word in ((a, "added"), (c, "changed"), (r, "removed")) if n]
    return ", ".join(parts) or "no change"


def _headline(result: DiffResult) -> str:
    if not result.changes:
        return "No rendered object changes"
    clusters = {c.cluster for c in result.changes if c.cluster != "-"}  # clusters, not (env, cluster) rows
    where = f"{len(clusters)} cluster{'s' if len(clusters) != 1 else ''}" if clusters else ""
    if any(c.cluster == "-" for c in result.changes):
        where = f"{where} and targets of no known cluster" if where else "targets of no known cluster"
    n = len(result.changes)
    return f"{n} object{'s' if n != 1 else ''} change on {where} ({_count_text(result.changes)})"


def _blast_table(rows: list[BlastRow]) -> list[str]:
    head = [
        "| Environment | Cluster | Targets | Added | Changed | Removed |",
        "|---|---|---:|---:|---:|---:|",
    ]
    body = [
        f"| {_md_cell(r.env)} | {_md_cell(r.cluster)} | {r.targets} | {r.added} | {r.changed} | {r.removed} |"
        for r in rows
    ]
    if len(rows) <= MAX_CLUSTER_ROWS:
        return [*head, *body, ""]
    per_env: dict[str, list[int]] = {}
    for r in rows:
        acc = per_env.setdefault(r.env, [0, 0, 0, 0, 0])
        for i, n in enumerate((1, r.targets, r.added, r.changed, r.removed)):
            acc[i] += n
    summary = [
        "| Environment | Clusters | Targets | Added | Changed | Removed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    summary += [
        f"| {_md_cell(env)} | {' | '.join(str(n) for n in acc)} |" for env, acc in sorted(per_env.items())
    ]
    return [
        *summary,
        "",
        f"<details><summary>All {len(rows)} clusters</summary>",
        "",
        *head,
        *body,
        "",
        "</details>",
        "",
    ]


MAX_DANGER_ROWS = 25


def danger_lines(dangers: list[Danger]) -> list[str]:
    """Return the danger section (a table, the rows past 25 folded), or nothing when there is none."""
    if not dangers:
        return []
    n = len(dangers)
    rows = [
        f"| {escape.text(d.env)} / {escape.text(d.cluster)} | {escape.code(d.rule, table=True)} | "
        f"{escape.code('/'.join(p for p in (d.kind, d.namespace, d.name) if p), table=True)} | "
        f"{escape.code(d.path, table=True)} | {escape.message(d.message, table=True)} |"
        for d in dangers
    ]
    head = ["| Cluster | Rule | Object | Path | What happens |", "|---|---|---|---|---|"]
    lines = [
        f"### ⚠️ {n} dangerous change{'s' if n != 1 else ''}: {'it destroys' if n == 1 else 'they destroy'} "
        "or replace what runs",
        "",
        *head,
        *rows[:MAX_DANGER_ROWS],
        "",
    ]
    if n > MAX_DANGER_ROWS:
        lines += [
            f"<details><summary>{n - MAX_DANGER_ROWS} more</summary>",
            "",
            *head,
            *rows[MAX_DANGER_ROWS:],
            "",
            "</details>",
            "",
        ]
    return lines


def _summary_lines(result: DiffResult, base_sha: str, head_sha: str) -> list[str]:
    revisions = f" · base `{_short(base_sha)}` → head `{_short(head_sha)}`" if base_sha or head_sha else ""
    lines = [
        "## Rendered diff",
        "",
        *danger_lines(result.dangers),
        f"**{_headline(result)}**{revisions} · "
        f"{result.targets_rendered} of {result.targets_total} targets rendered (the others did not change)",
        "",
    ]
    rows = result.blast_radius
    if rows:
        lines += _blast_table(rows)
    failed = [s for s in result.statuses if s.state == "failed"]
    if failed:
        names = ", ".join(escape.code(s.target) for s in failed[:_GROUP_LIST])
        more = f" and {len(failed) - _GROUP_LIST} more" if len(failed) > _GROUP_LIST else ""
        lines += [f"❌ **{len(failed)} target(s) could not be rendered at head:** {names}{more}", ""]
    if result.findings:
        lines += ["| | Rule | Where | Problem | What to do |", "|---|---|---|---|---|"]
        for f in result.findings:
            lines.append(
                f"| {_ICON[f.severity.value]} | {escape.code(f.rule, table=True)} | "
                f"{escape.code(f'{f.path}:{f.line}', table=True)} | "
                f"{escape.message(f.message, table=True)} | {escape.message(f.hint, table=True)} |"
            )
        lines.append("")
    return lines


@dataclass(frozen=True, slots=True)
class _Group:
    """Targets whose changes are identical (the same base change seen on many clusters)."""

    targets: tuple[tuple[str, str, str], ...]  # (env, cluster, target)
    changes: tuple[ObjectChange, ...]


def _groups(changes: list[ObjectChange]) -> list[_Group]:
    by_target: dict[tuple[str, str, str], list[ObjectChange]] = {}
    for c in sorted(changes, key=ObjectChange.sort_key):
        by_target.setdefault((c.env, c.cluster, c.target), []).append(c)
    grouped: dict[tuple[tuple[str, str, str, str, str], ...], list[tuple[str, str, str]]] = {}
    first: dict[tuple[tuple[str, str, str, str, str], ...], list[ObjectChange]] = {}
    for key, items in by_target.items():
        signature = tuple((c.kind, c.namespace, c.name, c.action, c.diff) for c in items)
        grouped.setdefault(signature, []).append(key)
        first.setdefault(signature, items)
    out = [_Group(tuple(keys), tuple(first[sig])) for sig, keys in grouped.items()]
    return sorted(out, key=lambda g: g.targets[0])


def _group_title(group: _Group) -> str:
    env, cluster, target = group.targets[0]
    counts = _count_text(list(group.changes))
    where = f"<b>{escape.html(env)} / {escape.html(cluster)}</b> · <code>{escape.html(target)}</code>"
    title = f"{where} · {counts}"
    if len(group.targets) > 1:
        title += f" · same change on {len(group.targets) - 1} more target(s)"
    return title


def _group_block(group: _Group, budget: int) -> str:
    others = ""
    if len(group.targets) > 1:
        listed = ", ".join(escape.code(f"{e}/{c}: {t}") for e, c, t in group.targets[1 : 1 + _GROUP_LIST * 4])
        more = len(group.targets) - 1 - _GROUP_LIST * 4
        others = f"Also on: {listed}{f' and {more} more' if more > 0 else ''}\n\n"
    body = "".join(c.diff for c in group.changes)
    head = f"<details><summary>{_group_title(group)}</summary>\n\n{others}"
    tail = "\n</details>\n"
    block = head + _fence(body) + tail
    if len(block) <= budget:
        return block
    note = "\n… diff truncated here; the full diff is in the `gitops-bot/diff` check run.\n"
    room = max(0, budget - len(head) - len(tail) - len(note) - 40)
    cut = body[:room].rsplit("\n", 1)[0] + "\n"
    return head + _fence(cut + note.strip() + "\n") + tail


def _marker(i: int, n: int) -> str:
    return f"{MARKER_PREFIX} {i}/{n} -->"


_MARKER_RE = re.compile(r"\A<!-- gitops-bot:diff part (\d+)/(\d+) -->")


def parse_marker(body: str) -> tuple[int, int] | None:
    """Return (part, parts) when ``body`` is one of the bot's diff comments, else None.

    The handler uses it to find the sticky comment (part 1) and the extra parts of an
    earlier run, which it updates in place or deletes when there are fewer parts now.
    """
    m = _MARKER_RE.match(body or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def diff_comment_parts(
    result: DiffResult,
    *,
    base_sha: str,
    head_sha: str,
    limit: int = COMMENT_LIMIT,
    max_parts: int = MAX_PARTS,
) -> list[str]:
    """Return the diff comment(s): part 1 is the sticky comment, each part starts with its marker.

    Targets with identical changes are shown once. When everything does not fit in
    ``limit`` characters, the diffs are split over up to ``max_parts`` numbered comments;
    beyond that, a single concise summary points to the ``gitops-bot/diff`` check run.
    """
    reserve = len(_marker(99, 99)) + 2
    summary = "\n".join(_summary_lines(result, base_sha, head_sha))
    groups = _groups(result.changes)
    body_budget = limit - reserve
    blocks = [_group_block(g, body_budget - 200) for g in groups]
    parts: list[list[str]] = [[summary, "### Changes by target\n"] if blocks else [summary]]
    sizes = [sum(len(x) + 1 for x in parts[0])]
    for block in blocks:
        if sizes[-1] + len(block) + 1 > body_budget:
            parts.append(["## Rendered diff (continued)\n"])
            sizes.append(len(parts[-1][0]) + 1)
        parts[-1].append(block)
        sizes[-1] += len(block) + 1
    if len(parts) > max_parts or len(summary) > body_budget:
        concise = summary
        if len(concise) > body_budget - 400:
            concise = concise[: body_budget - 400].rsplit("\n", 1)[0] + "\n\n… summary truncated."
        note = (
            f"\n\nThe full diff is too large for comments ({len(groups)} distinct change sets): "
            f"see the **{CHECK_NAME}** check run for the object-by-object diff, or run "
            f"`gitops-bot check --base {_short(base_sha)} --head {_short(head_sha)}` locally."
        )
        return [f"{_marker(1, 1)}\n{concise}{note}\n"]
    n = len(parts)
    footer = FOOTER.format(base=_short(base_sha), head=_short(head_sha))
    if sizes[-1] + len(footer) + 1 <= body_budget:
        parts[-1].append(footer)
    return [f"{_marker(i, n)}\n" + "\n".join(p) for i, p in enumerate(parts, 1)]


def diff_check_output(result: DiffResult, *, limit: int = CHECK_TEXT_LIMIT) -> tuple[str, str, str]:
    """Return the ``gitops-bot/diff`` check run's (title, summary, text), each under GitHub's limits.

    The text holds every object diff, grouped like the comment, truncated with a note
    when it passes ``limit`` characters.
    """
    title = _headline(result)
    if result.dangers:
        title = f"⚠️ {len(result.dangers)} dangerous change(s) · {title}"
    summary = "\n".join(_summary_lines(result, "", "")[2:]).strip()
    if len(summary) > CHECK_SUMMARY_LIMIT:
        summary = summary[: CHECK_SUMMARY_LIMIT - 40].rsplit("\n", 1)[0] + "\n\n… summary truncated."
    chunks: list[str] = []
    size = 0
    note = "\n\n… output truncated at GitHub's 65,535-character limit; run `gitops-bot check` for all of it."
    for group in _groups(result.changes):
        env, cluster, target = group.targets[0]
        also = f" (same change on {len(group.targets) - 1} more target(s))" if len(group.targets) > 1 else ""
        where = f"{escape.text(env)} / {escape.text(cluster)} · {escape.code(target)}"
        chunk = f"### {where}{also}\n\n" + _fence("".join(c.diff for c in group.changes))
        if size + len(chunk) + 2 > limit - len(note):
            room = limit - len(note) - size - 60
            if room > 200:
                chunks.append(chunk[:room].rsplit("\n", 1)[0] + "\n```")
            chunks.append(note.strip())
            break
        chunks.append(chunk)
        size += len(chunk) + 2
    text = "\n\n".join(chunks) if chunks else "No rendered object changes."
    return title, summary or "No rendered object changes.", text
