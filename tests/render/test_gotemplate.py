"""Go templates of ApplicationSets, construct by construct and function by function.

Expected values are what Go's text/template documentation (pkg.go.dev/text/template) and the
sprig documentation (masterminds.github.io/sprig) state, and for ``normalize``/``slugify``
what Argo CD's SanitizeName and SlugifyName (gosimple/slug v1.15) compute. Everything runs
through the real engine in its sandboxed worker (see bot/render_runtime/gotemplate_runner.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain.render.gotemplate import (
    ARGOCD_FUNCS,
    TemplateError,
    TemplateUnavailable,
    check_and_rewrite,
    functions_used,
    render_many,
)
from bot.render_runtime.gotemplate_runner import GoTemplateRunner, default_runner

DATA: dict[str, Any] = {
    "name": "Prod_EU/West",
    "n": 3,
    "list": ["a", "b", "c"],
    "empty": [],
    "labels": {"env": "prod", "tier": "gold"},
    "nested": {"inner": {"x": "deep"}},
    "flag": False,
    "text": "hello world",
}


def go(template: str, data: dict[str, Any] | None = None, *, strict: bool = False) -> str:
    return render_many(default_runner(), [template], [DATA if data is None else data], strict=strict)[0][0]


# ------------------------------------------------------------------ constructs


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # text and actions; trim markers need a space, `{{-3}}` is the number -3
        ("plain text", "plain text"),
        ("{{23 -}} < {{- 45}}", "23<45"),
        ("{{-3}}", "-3"),
        ("a  {{- .name -}}  b", "aProd_EU/Westb"),
        ("x\n  {{- /* a comment */ -}}\n  y", "xy"),
        ("{{/* comment */}}", ""),
        # pipelines: the value of a command is the last argument of the next
        ('{{"output" | printf "%q"}}', '"output"'),
        ('{{ .text | printf "%s!" | upper }}', "HELLO WORLD!"),
        ('{{ printf "%s-%d" .name 7 }}', "Prod_EU/West-7"),
        ('{{ (index .labels "env") | upper }}', "PROD"),
        # if / else if / else, truthiness: false, 0, nil, empty string, list and map are false
        ("{{ if .flag }}T{{ else if .n }}N{{ else }}E{{ end }}", "N"),
        ("{{ if .empty }}T{{ else }}E{{ end }}", "E"),
        ('{{ if "" }}T{{ else }}E{{ end }}', "E"),
        ("{{ if .labels }}T{{ end }}", "T"),
        # range: lists, index and element variables, maps in sorted key order, else, int ranges
        ("{{ range .list }}{{ . }}{{ end }}", "abc"),
        ("{{ range $i, $e := .list }}{{ $i }}={{ $e }};{{ end }}", "0=a;1=b;2=c;"),
        ("{{ range $k, $v := .labels }}{{ $k }}:{{ $v }} {{ end }}", "env:prod tier:gold "),
        ("{{ range .empty }}x{{ else }}none{{ end }}", "none"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ('{{ range .list }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', "a"),
        ('{{ range .list }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "ac"),
        # with, with-else and else-with
        ("{{ with .nested.inner }}{{ .x }}{{ end }}", "deep"),
        ("{{ with .empty }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ with .empty }}a{{ else with .labels.env }}{{ . }}{{ end }}", "prod"),
        # variables: declaration, assignment, scope, and $ as the parameter set everywhere
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ range .list }}{{ $.name }}/{{ . }} {{ end }}", "Prod_EU/West/a Prod_EU/West/b Prod_EU/West/c "),
        ("{{ with .labels }}{{ $.n }}-{{ .env }}{{ end }}", "3-prod"),
        # comparisons: eq with several operands, ordered comparisons, and/or return an operand
        ('{{ eq .labels.env "dev" "prod" }}', "true"),
        ('{{ lt "a" "b" }} {{ ge 2 2 }} {{ ne 1 2 }}', "true true true"),
        ('{{ and 1 "" 3 }}|{{ or 0 "" "x" }}', "|x"),
        ('{{ and false (fail "not evaluated") }}', "false"),
        ("{{ not .flag }}", "true"),
        # index, slice, len, print family
        ('{{ index .list 1 }}{{ index .nested "inner" "x" }}', "bdeep"),
        ("{{ slice .list 1 }}", "[b c]"),
        ("{{ len .list }} {{ len .labels }} {{ len .text }}", "3 2 11"),
        ('{{ print 1 2 }} {{ println "x" }}', "1 2 x\n"),
        ("{{ .labels }}", "map[env:prod tier:gold]"),
        ('{{ html "<a>" }} {{ js "it\'s" }} {{ urlquery "a b" }}', "&lt;a&gt; it\\'s a+b"),
        # numbers from parameters are float64, as Argo CD's JSON-decoded parameters are
        ('{{ printf "%T %v" .n .n }}', "float64 3"),
    ],
)
def test_go_constructs(template: str, expected: str) -> None:
    assert go(template) == expected


def test_missing_keys_print_empty_and_missingkey_error_fails() -> None:
    # Go prints <no value> here; Helm's engine removes that text (a documented difference).
    assert go("[{{ .missing }}]") == "[]"
    assert go('{{ .missing | default "fallback" }}') == "fallback"
    with pytest.raises(TemplateError, match='map has no entry for key "missing"') as missing:
        go("{{ .missing }}", strict=True)
    assert missing.value.kind == "missing_key"  # the worker says which kind, the bot never greps


def test_errors_name_the_template_and_the_parameter_set() -> None:
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}\.x") as exc:
        render_many(default_runner(), ["ok", "{{ .nope.x }}"], [{"nope": {"x": 1}}, {}], strict=False)
    assert "'{{ .nope.x }}'" in str(exc.value)
    assert "(parameter set 2 of 2: '{}')" in str(exc.value)
    assert "gitops-bot" not in str(exc.value)
    with pytest.raises(TemplateError, match="missing value for if"):
        go("{{ if }}")
    with pytest.raises(TemplateError, match="parse error") as parse:  # Go: unclosed action
        go("{{ .name ")
    assert parse.value.kind == "parse"
    with pytest.raises(TemplateError) as failing:
        go('{{ fail "no" }}')
    assert failing.value.kind == "execute"


# ------------------------------------------------------------------ functions


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # strings
        ('{{ trim "  x  " }}|{{ upper "a" }}|{{ lower "A" }}|{{ title "hello world" }}', "x|A|a|Hello World"),
        ('{{ trunc 5 "hello world" }}|{{ trunc -5 "hello world" }}', "hello|world"),
        ('{{ substr 0 5 "hello world" }}|{{ repeat 3 "ab" }}', "hello|ababab"),
        (
            '{{ trimPrefix "eks-" "eks-prod" }}|{{ trimSuffix "-x" "a-x" }}|{{ trimAll "$" "$5$" }}',
            "prod|a|5",
        ),
        ('{{ "a_b_c" | replace "_" "-" }}|{{ nospace "a b c" }}', "a-b-c|abc"),
        (
            '{{ contains "ell" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}',
            "true true true",
        ),
        ('{{ quote "a" 1 }}|{{ squote "a" }}|{{ cat "a" 1 "b" }}', '"a" "1"|\'a\'|a 1 b'),
        ('{{ indent 2 "a\\nb" }}|{{ nindent 2 "a" }}', "  a\n  b|\n  a"),
        ('{{ abbrev 5 "hello world" }}|{{ initials "Hello World" }}', "he...|HW"),
        (
            '{{ snakecase "FirstName" }}|{{ camelcase "http_server" }}|{{ kebabcase "FirstName" }}',
            "first_name|HttpServer|first-name",
        ),
        ('{{ wrap 5 "hello world" }}', "hello\nworld"),
        ('{{ plural "one" "many" 2 }}|{{ toString 5 }}|{{ atoi "42" }}', "many|5|42"),
        # lists
        (
            "{{ list 1 2 3 | first }}{{ list 1 2 3 | last }}{{ rest (list 1 2 3) }}{{ initial (list 1 2) }}",
            "13[2 3][1]",
        ),
        (
            "{{ append (list 1) 2 }}{{ prepend (list 1) 0 }}{{ concat (list 1) (list 2 3) }}",
            "[1 2][0 1][1 2 3]",
        ),
        (
            '{{ uniq (list 1 1 2) }}{{ without (list 1 2) 2 }}{{ has 4 (list 1) }}{{ compact (list 1 "") }}',
            "[1 2][1]false[1]",
        ),
        (
            '{{ reverse (list 1 2) }}{{ sortAlpha (list "b" "a") }}{{ join "," (list "a" "b") }}',
            "[2 1][a b]a,b",
        ),
        ('{{ splitList "/" "a/b" }}{{ (split "/" "a/b")._1 }}{{ (splitn "/" 2 "a/b/c")._1 }}', "[a b]bb/c"),
        (
            "{{ chunk 2 (list 1 2 3) }}{{ until 3 }}{{ untilStep 0 6 2 }}{{ seq 3 }}",
            "[[1 2] [3]][0 1 2][0 2 4]1 2 3",
        ),
        # dicts
        (
            '{{ $d := dict "a" 1 "b" 2 }}{{ get $d "a" }}{{ hasKey $d "b" }}{{ keys $d | sortAlpha }}',
            "1true[a b]",
        ),
        ('{{ $d := dict "a" 1 }}{{ $_ := set $d "c" 3 }}{{ $_ := unset $d "a" }}{{ $d }}', "map[c:3]"),
        ('{{ pick (dict "a" 1 "b" 2) "a" }}{{ omit (dict "a" 1 "b" 2) "a" }}', "map[a:1]map[b:2]"),
        (
            '{{ merge (dict "a" 1) (dict "a" 2 "b" 2) }}{{ mergeOverwrite (dict "a" 1) (dict "a" 2) }}',
            "map[a:1 b:2]map[a:2]",
        ),
        ('{{ dig "inner" "x" "none" .nested }}{{ pluck "a" (dict "a" 1) (dict "a" 2) }}', "deep[1 2]"),
        # math
        (
            "{{ add 1 2 3 }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 1 }}",
            "6 3 6 3 1 2",
        ),
        ("{{ max 1 5 3 }} {{ min 4 2 }} {{ floor 1.7 }} {{ ceil 1.2 }} {{ round 1.25 1 }}", "5 2 1 2 1.3"),
        ('{{ addf 1.5 1 }} {{ int "7" }} {{ int64 3.9 }} {{ float64 "1.5" }}', "2.5 7 3 1.5"),
        # defaults and flow
        ('{{ default "d" "" }}|{{ default "d" "v" }}|{{ empty "" }}|{{ coalesce "" "x" }}', "d|v|true|x"),
        ('{{ ternary "yes" "no" true }}|{{ all 1 "a" }}|{{ any 0 "" "a" }}', "yes|true|true"),
        # encodings and hashes
        ('{{ b64enc "hi" }}|{{ b64dec "aGk=" }}|{{ b32enc "hi" }}', "aGk=|hi|NBUQ===="),
        (
            '{{ sha256sum "a" | trunc 12 }}|{{ sha1sum "a" | trunc 8 }}|{{ adler32sum "a" }}',
            "ca978112ca1b|86f7e437|6422626",
        ),
        # JSON and YAML
        ('{{ toJson (dict "b" 1 "a" (list "x")) }}', '{"a":["x"],"b":1}'),
        ('{{ toPrettyJson (dict "a" 1) }}', '{\n  "a": 1\n}'),
        (
            '{{ toRawJson (dict "a" "<b>") }}|{{ toJson (dict "a" "<b>") }}',
            '{"a":"<b>"}|{"a":"\\u003cb\\u003e"}',
        ),
        ('{{ (fromJson "{\\"a\\": 2}").a }}', "2"),
        ('{{ toYaml (dict "a" (list 1 2)) }}', "a:\n- 1\n- 2"),
        ('{{ (fromYaml "a: {b: c}").a.b }}|{{ fromYamlArray "[1, x]" }}', "c|[1 x]"),
        # regular expressions
        ('{{ regexMatch "^[a-z]+$" "abc" }}|{{ regexFind "[0-9]+" "ab12cd34" }}', "true|12"),
        ('{{ regexFindAll "[0-9]" "a1b2" -1 }}|{{ regexSplit "-" "a-b" -1 }}', "[1 2]|[a b]"),
        (
            '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}|{{ regexReplaceAllLiteral "a" "aa" "$1" }}',
            "-W-xxW-|$1$1",
        ),
        ('{{ regexQuoteMeta "a.b" }}', "a\\.b"),
        # paths, URLs, semver, types, dates with a fixed input
        (
            '{{ base "a/b.txt" }}|{{ dir "a/b" }}|{{ clean "a//b/../c" }}|{{ ext "x.yml" }}|{{ isAbs "/a" }}',
            "b.txt|a|a/c|.yml|true",
        ),
        (
            '{{ (urlParse "https://h:1/p?q=1").host }}|{{ urlJoin (dict "scheme" "https" "host" "h") }}',
            "h:1|https://h",
        ),
        ('{{ semverCompare ">=1.28" "1.29.3" }}|{{ (semver "1.2.3").Minor }}', "true|2"),
        (
            '{{ typeOf "a" }}|{{ kindOf (list) }}|{{ kindIs "map" .labels }}|{{ deepEqual (list 1) (list) }}',
            "string|slice|true|false",
        ),
        ('{{ toDate "2006-01-02" "2024-03-05" | date "02/01/2006" }}', "05/03/2024"),
    ],
)
def test_sprig_functions(template: str, expected: str) -> None:
    assert go(template) == expected


def test_fail_stops_the_template() -> None:
    with pytest.raises(TemplateError, match="cluster has no region"):
        go('{{ fail "cluster has no region" }}')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Prod_EU/West", "prod-eu-west"),
        ("--My.App--", "my.app"),
        ("a" * 300, "a" * 253),
        ("ÄÖ-name", "name"),  # each non-ASCII letter becomes "-", then the ends are trimmed
    ],
)
def test_normalize_is_argocd_sanitize_name(value: str, expected: str) -> None:
    assert go("{{ normalize .v }}", {"v": value}) == expected
    assert go("{{ .v | normalize }}", {"v": value}) == expected


BRANCH = "feat/a_really+long_pull_request_name_to_test_argo_slugification_and_branch_name_shortening_feature"
NO_DASH = "feat/areallylongpullrequestnametotestargoslugificationandbranchnameshorteningfeature"


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        # defaults: 50 characters, smart truncation at the last dash
        ("{{ slugify .v }}", "Hello World.Again", "hello-world-again"),
        ("{{ slugify .v }}", BRANCH, "feat-a-really-long-pull-request-name-to-test-argo"),
        ("{{ slugify 50 false .v }}", BRANCH, "feat-a-really-long-pull-request-name-to-test-argo"),
        ("{{ slugify 53 true .v }}", BRANCH, "feat-a-really-long-pull-request-name-to-test-argo"),
        ("{{ slugify 50 true .v }}", NO_DASH, "feat"),
        ("{{ slugify 50 false .v }}", NO_DASH, "feat-areallylongpullrequestnametotestargoslugifica"),
        ("{{ .v | slugify 10 }}", "one-two-three-four", "one-two"),
        ("{{ .v | slugify 10 false }}", "one-two-three-four", "one-two-th"),
        ('{{ printf "%s-x" (slugify 7 .v) }}', "one-two-three", "one-two-x"),
    ],
)
def test_slugify_is_argocd_slugify_name(template: str, value: str, expected: str) -> None:
    assert go(template, {"v": value}) == expected


@pytest.mark.parametrize(
    "function", ["env", "expandenv", "getHostByName", "required", "include", "tpl", "lookup", "toToml"]
)
def test_functions_argocd_does_not_have_are_refused_like_its_parser_does(function: str) -> None:
    with pytest.raises(TemplateError, match=f'function "{function}" not defined'):
        go(f'{{{{ {function} "x" }}}}')


def test_every_argocd_function_exists_in_the_engine() -> None:
    probe = "".join(
        f"{{{{ if false }}}}{{{{ {name} }}}}{{{{ end }}}}"
        for name in sorted(ARGOCD_FUNCS - {"normalize", "slugify"})
    )
    assert go(probe) == ""


def test_lexer_finds_functions_only_in_actions_and_outside_strings() -> None:
    template = (
        'env {{ "}} env" }} {{ `raw }} tpl` }} {{/* required */}} {{ .env }} {{ $env := 1 }}'
        "{{- upper .x -}}{{ 'e' }}"
    )
    assert functions_used(template) == {"upper"}
    assert check_and_rewrite("{{ .name | normalize }}") == '{{ .name | include "gitops-bot.normalize" }}'
    assert (
        check_and_rewrite("{{ (slugify 20 .a) | upper }}")
        == '{{ (include "gitops-bot.slugify" (list 20 .a)) | upper }}'
    )
    with pytest.raises(TemplateUnavailable, match="define"):
        check_and_rewrite('{{ define "x" }}a{{ end }}')


def test_many_parameter_sets_in_one_call() -> None:
    runner = GoTemplateRunner()
    try:
        params = [
            {"name": f"cluster-{i:03}", "labels": {"env": "prod" if i % 2 else "dev"}} for i in range(300)
        ]
        rows = render_many(
            runner, ["{{ .name }}", "{{ .labels.env | upper }}", "static"], params, strict=True
        )
        assert runner.calls == 1
        assert rows[7] == ["cluster-007", "PROD", "static"]
        assert len(rows) == 300
    finally:
        runner.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("template", "timeout", "why"),
    [
        ("{{ range until 20000 }}{{ range until 20000 }}{{ end }}{{ end }}", 1.0, "longer than 1 s"),
        ("{{ until 100000000 | len }}", 30.0, "memory or CPU limit"),
    ],
)
def test_a_runaway_template_is_stopped_and_the_worker_replaced(
    template: str, timeout: float, why: str
) -> None:
    runner = GoTemplateRunner(timeout=timeout)
    try:
        with pytest.raises(TemplateError, match=why):
            render_many(runner, [template], [{}], strict=False)
        assert render_many(runner, ["{{ .a }}"], [{"a": "still works"}], strict=False) == [["still works"]]
    finally:
        runner.close()
