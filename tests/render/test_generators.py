"""Conformance tests for ApplicationSet generators, from the worked cases in Argo CD's docs.

Cases follow shared/notes/argocd-applicationset-generators.md (Argo CD 3.6.0 docs and
controller behaviour). Generated Applications are compared as sets, never by order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.domain.render.argocd import (
    LOCAL_SERVER,
    AppSetContext,
    ClusterInfo,
    GeneratorError,
    cluster_from_secret,
    expand_appset,
    generate,
    render_all,
)
from bot.domain.render.gotemplate import TemplateError, render_fast
from bot.render_runtime.gotemplate_runner import default_runner

GO = default_runner()  # the process's sandboxed Go template engine, created on first use

SECRET = "argocd.argoproj.io/secret-type"


def appset(generators: list[dict[str, Any]], template: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "t", "namespace": "argocd"},
        "spec": {"generators": generators, "template": template, **spec},
    }


def tmpl(name: str, path: str = "p", dest: str = "{{server}}") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"project": "default", "source": {"path": path}, "destination": {"server": dest}},
    }


def names(apps: list[dict[str, Any]]) -> set[str]:
    return {a["metadata"]["name"] for a in apps}


def cluster(name: str, server: str, **labels: str) -> ClusterInfo:
    return ClusterInfo(name=name, server=server, labels={SECRET: "cluster", **labels})


# ------------------------------------------------------------------ list


def test_list_generator_one_application_per_element() -> None:
    gen = {
        "list": {
            "elements": [
                {"cluster": "engineering-dev", "url": "https://kubernetes.default.svc"},
                {
                    "cluster": "engineering-prod",
                    "url": "https://kubernetes.default.svc",
                    "values": {"ns": "x"},
                },
            ]
        }
    }
    apps = expand_appset(
        appset([gen], tmpl("{{cluster}}-guestbook", "guestbook/{{cluster}}", "{{url}}")),
        AppSetContext(None, go_engine=GO),
    )
    assert names(apps) == {"engineering-dev-guestbook", "engineering-prod-guestbook"}
    prod = next(a for a in apps if a["metadata"]["name"] == "engineering-prod-guestbook")
    assert prod["spec"]["source"]["path"] == "guestbook/engineering-prod"
    assert generate(gen, AppSetContext(None, go_engine=GO), go=False)[1]["values.ns"] == "x"


def test_list_elements_yaml_is_appended_after_elements() -> None:
    gen = {"list": {"elements": [{"n": "a"}], "elementsYaml": "- n: b\n- n: c\n"}}
    assert [p["n"] for p in generate(gen, AppSetContext(None, go_engine=GO), go=True)] == ["a", "b", "c"]


def test_list_non_string_element_needs_go_template() -> None:
    with pytest.raises(GeneratorError, match="goTemplate"):
        generate({"list": {"elements": [{"n": {"nested": 1}}]}}, AppSetContext(None, go_engine=GO), go=False)


def test_fasttemplate_unknown_key_is_left_unchanged_and_whitespace_trimmed() -> None:
    assert render_fast("{{ cluster }}-{{foo}}", {"cluster": "dev"}) == "dev-{{foo}}"


def test_post_selector_filters_parameter_sets() -> None:
    gen = {
        "list": {
            "elements": [
                {"cluster": "engineering-dev", "url": "https://kubernetes.default.svc", "env": "staging"},
                {"cluster": "engineering-prod", "url": "https://kubernetes.default.svc", "env": "prod"},
            ]
        },
        "selector": {"matchLabels": {"env": "staging"}},
    }
    sets = generate(gen, AppSetContext(None, go_engine=GO), go=False)
    assert [s["cluster"] for s in sets] == ["engineering-dev"]
    expr = {
        **gen,
        "selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]},
    }
    assert generate(expr, AppSetContext(None, go_engine=GO), go=False) == sets


# ------------------------------------------------------------------ clusters


CLUSTERS = [
    cluster("staging", "https://staging.example.com", env="staging"),
    cluster("production_01/west", "https://prod.example.com", env="prod"),
]


def test_cluster_generator_parameters_and_name_normalized() -> None:
    sets = generate(
        {"clusters": {"selector": {"matchLabels": {SECRET: "cluster"}}}},
        AppSetContext(None, CLUSTERS, go_engine=GO),
        go=False,
    )
    prod = next(s for s in sets if s["server"] == "https://prod.example.com")
    assert prod["nameNormalized"] == "production-01-west"
    assert prod["metadata.labels.env"] == "prod"
    assert prod["project"] == ""
    assert len(sets) == 2  # a selector excludes the secret-less local cluster


def test_cluster_generator_without_selector_adds_in_cluster_last() -> None:
    sets = generate({"clusters": {}}, AppSetContext(None, CLUSTERS, go_engine=GO), go=True)
    assert sets[-1] == {
        "name": "in-cluster",
        "nameNormalized": "in-cluster",
        "server": LOCAL_SERVER,
        "project": "",
    }
    assert "metadata" not in sets[-1]


def test_cluster_generator_no_synthetic_local_when_a_secret_targets_it() -> None:
    local = [cluster("hub", LOCAL_SERVER)]
    sets = generate({"clusters": {}}, AppSetContext(None, local, go_engine=GO), go=False)
    assert [s["name"] for s in sets] == ["hub"]


def test_cluster_values_are_templated_but_cannot_reference_values() -> None:
    gen = {
        "clusters": {
            "selector": {"matchLabels": {"env": "staging"}},
            "values": {"rev": "{{name}}-head", "lol": "{{values.rev}}"},
        }
    }
    (params,) = generate(gen, AppSetContext(None, CLUSTERS, go_engine=GO), go=False)
    assert params["values.rev"] == "staging-head"
    assert params["values.lol"] == "{{values.rev}}"


def test_cluster_generator_go_template_labels_via_index() -> None:
    spec = appset(
        [
            {
                "clusters": {
                    "selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}
                }
            }
        ],
        tmpl('{{.nameNormalized}}-{{index .metadata.labels "env"}}', dest="{{.server}}"),
        goTemplate=True,
    )
    apps = expand_appset(spec, AppSetContext(None, CLUSTERS, go_engine=GO))
    assert names(apps) == {"production-01-west-prod"}


def test_cluster_generator_flat_list_gives_one_application() -> None:
    sets = generate(
        {"clusters": {"flatList": True, "selector": {"matchLabels": {SECRET: "cluster"}}}},
        AppSetContext(None, CLUSTERS, go_engine=GO),
        go=True,
    )
    assert len(sets) == 1
    assert [c["name"] for c in sets[0]["clusters"]] == ["staging", "production_01/west"]


def test_selector_in_without_values_is_an_error() -> None:
    gen = {"clusters": {"selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": []}]}}}
    with pytest.raises(GeneratorError, match="at least one value"):
        generate(gen, AppSetContext(None, CLUSTERS, go_engine=GO), go=False)


def test_cluster_secret_reads_name_and_server_never_config() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "c1", "labels": {SECRET: "cluster", "env": "dev"}},
        "stringData": {
            "name": "dev-1",
            "server": "https://dev-1.example.com",
            "config": '{"bearerToken":"tok"}',
        },
    }
    info = cluster_from_secret(secret)
    assert info is not None and info.name == "dev-1" and info.labels["env"] == "dev"
    assert "tok" not in repr(info)


# ------------------------------------------------------------------ git directories


def _tree(tmp_path: Path, paths: list[str]) -> Path:
    for p in paths:
        (tmp_path / p).mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_git_directories_parameters(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        ["cluster-addons/argo-workflows", "cluster-addons/prometheus-operator", "cluster-addons/.hidden"],
    )
    sets = generate(
        {"git": {"directories": [{"path": "cluster-addons/*"}]}}, AppSetContext(tree, go_engine=GO), go=False
    )
    assert {s["path"] for s in sets} == {
        "cluster-addons/argo-workflows",
        "cluster-addons/prometheus-operator",
    }
    s = next(s for s in sets if s["path.basename"] == "argo-workflows")
    assert s["path[0]"] == "cluster-addons" and s["path[1]"] == "argo-workflows"


def test_git_directories_star_does_not_cross_slash(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ["one/two/three/four"])
    sets = generate({"git": {"directories": [{"path": "one/*"}]}}, AppSetContext(tree, go_engine=GO), go=True)
    assert [s["path"]["path"] for s in sets] == ["one/two"]
    deep = generate(
        {"git": {"directories": [{"path": "/one/*/*/*"}]}}, AppSetContext(tree, go_engine=GO), go=True
    )
    assert deep[0]["path"]["basename"] == "four"
    assert deep[0]["path"]["segments"] == ["one", "two", "three", "four"]


def test_git_directories_exclusion_always_wins(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ["d/e", "d/f", "d/g", "d/h"])
    wrong = [{"path": "/d/e"}, {"path": "/d/*", "exclude": True}]
    assert generate({"git": {"directories": wrong}}, AppSetContext(tree, go_engine=GO), go=False) == []
    right = [{"path": "/d/*"}, {"path": "/d/[fg]", "exclude": True}]
    assert {
        s["path"]
        for s in generate({"git": {"directories": right}}, AppSetContext(tree, go_engine=GO), go=False)
    } == {
        "d/e",
        "d/h",
    }


def test_git_directories_basename_normalized_and_prefix(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ["apps/directory_2"])
    gen = {"git": {"directories": [{"path": "apps/*"}], "pathParamPrefix": "app"}}
    (fast,) = generate(gen, AppSetContext(tree, go_engine=GO), go=False)
    assert fast["app.path.basenameNormalized"] == "directory-2"
    (go,) = generate(gen, AppSetContext(tree, go_engine=GO), go=True)
    assert go["app"]["path"]["basename"] == "directory_2"


# ------------------------------------------------------------------ git files


def test_git_files_flatten_and_path_parameters(tmp_path: Path) -> None:
    config = (
        '{"aws_account": "123456", "cluster": {"owner": "cluster-admin@company.com", '
        '"name": "engineering-dev", "address": "https://1.2.3.4"}}'
    )
    (tmp_path / "cluster-config/engineering/dev").mkdir(parents=True)
    (tmp_path / "cluster-config/engineering/dev/config.json").write_text(config)
    gen = {"git": {"files": [{"path": "cluster-config/**/config.json"}]}}
    (fast,) = generate(gen, AppSetContext(tmp_path, go_engine=GO), go=False)
    assert fast["cluster.name"] == "engineering-dev"
    assert fast["path"] == "cluster-config/engineering/dev"
    assert fast["path[1]"] == "engineering"
    assert fast["path.basename"] == "dev"
    assert fast["path.filename"] == "config.json"
    (go,) = generate(gen, AppSetContext(tmp_path, go_engine=GO), go=True)
    assert go["cluster"]["address"] == "https://1.2.3.4"
    assert go["path"]["segments"] == ["cluster-config", "engineering", "dev"]


def test_git_files_glob_is_greedy_and_arrays_give_one_set_each(tmp_path: Path) -> None:
    (tmp_path / "a/b/c").mkdir(parents=True)
    (tmp_path / "a/b/c/values.yaml").write_text("- name: x\n- name: y\n")
    (tmp_path / "a/values.yaml").write_text("name: top\n")
    sets = generate(
        {"git": {"files": [{"path": "a/*/values.yaml"}]}}, AppSetContext(tmp_path, go_engine=GO), go=False
    )
    assert sorted(s["name"] for s in sets) == ["x", "y"]
    excluded = generate(
        {"git": {"files": [{"path": "a/**"}, {"path": "a/b/**", "exclude": True}]}},
        AppSetContext(tmp_path, go_engine=GO),
        go=False,
    )
    assert [s["name"] for s in excluded] == ["top"]


def test_git_files_read_only_the_first_document_and_empty_files_give_path_parameters(tmp_path: Path) -> None:
    """Argo CD parses a file with sigs.k8s.io/yaml: later documents are ignored, an empty file is one set."""
    (tmp_path / "clusters/dev-a").mkdir(parents=True)
    (tmp_path / "clusters/dev-b").mkdir(parents=True)
    (tmp_path / "clusters/dev-a/cluster.yaml").write_text(
        "kind: EKSCluster\nmetadata: {name: dev-a}\n---\nkind: Secret\nmetadata: {name: db}\n"
    )
    (tmp_path / "clusters/dev-b/cluster.yaml").write_text("# nothing yet\n")
    sets = generate(
        {"git": {"files": [{"path": "clusters/*/cluster.yaml"}]}},
        AppSetContext(tmp_path, go_engine=GO),
        go=True,
    )
    by_dir = {s["path"]["basename"]: s for s in sets}
    assert sorted(by_dir) == ["dev-a", "dev-b"] and len(sets) == 2
    assert by_dir["dev-a"]["kind"] == "EKSCluster" and by_dir["dev-a"]["metadata"] == {"name": "dev-a"}
    assert set(by_dir["dev-b"]) == {"path"}


# ------------------------------------------------------------------ matrix


def test_matrix_cluster_by_git_directories(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        [
            "applicationset/examples/matrix/cluster-addons/argo-workflows",
            "applicationset/examples/matrix/cluster-addons/prometheus-operator",
        ],
    )
    ctx = AppSetContext(tree, CLUSTERS, go_engine=GO)
    gen = {
        "matrix": {
            "generators": [
                {"git": {"directories": [{"path": "applicationset/examples/matrix/cluster-addons/*"}]}},
                {"clusters": {"selector": {"matchLabels": {SECRET: "cluster"}}}},
            ]
        }
    }
    apps = expand_appset(appset([gen], tmpl("{{path.basename}}-{{name}}", "{{path}}")), ctx)
    assert names(apps) == {
        "argo-workflows-staging",
        "argo-workflows-production_01/west",
        "prometheus-operator-staging",
        "prometheus-operator-production_01/west",
    }


def test_matrix_second_child_uses_first_childs_parameters(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ["envs/staging", "envs/prod"])
    gen = {
        "matrix": {
            "generators": [
                {"git": {"directories": [{"path": "envs/*"}]}},
                {"clusters": {"selector": {"matchLabels": {"env": "{{.path.basename}}"}}}},
            ]
        }
    }
    sets = generate(gen, AppSetContext(tree, CLUSTERS, go_engine=GO), go=True)
    assert sorted((s["path"]["basename"], s["name"]) for s in sets) == [
        ("prod", "production_01/west"),
        ("staging", "staging"),
    ]


def test_matrix_fasttemplate_conflicting_keys_need_path_param_prefix(tmp_path: Path) -> None:
    tree = _tree(tmp_path, ["a/x", "b/y"])
    two_git = {
        "matrix": {
            "generators": [
                {"git": {"directories": [{"path": "a/*"}]}},
                {"git": {"directories": [{"path": "b/*"}]}},
            ]
        }
    }
    with pytest.raises(GeneratorError, match="duplicate key"):
        generate(two_git, AppSetContext(tree, go_engine=GO), go=False)
    two_git["matrix"]["generators"][1]["git"]["pathParamPrefix"] = "b"
    (s,) = generate(two_git, AppSetContext(tree, go_engine=GO), go=False)
    assert s["path"] == "a/x" and s["b.path"] == "b/y"


def test_matrix_go_template_first_child_wins() -> None:
    gen = {
        "matrix": {
            "generators": [
                {"list": {"elements": [{"k": "first", "a": "1"}]}},
                {"list": {"elements": [{"k": "second", "b": "2"}]}},
            ]
        }
    }
    assert generate(gen, AppSetContext(None, go_engine=GO), go=True) == [{"k": "first", "a": "1", "b": "2"}]


def test_matrix_needs_exactly_two_children_and_one_nesting_level() -> None:
    with pytest.raises(GeneratorError, match="exactly two"):
        generate(
            {"matrix": {"generators": [{"list": {"elements": []}}]}},
            AppSetContext(None, go_engine=GO),
            go=False,
        )
    lst = {"list": {"elements": [{"a": "1"}]}}
    inner = {"matrix": {"generators": [lst, {"list": {"elements": [{"b": "2"}]}}]}}
    nested = {"matrix": {"generators": [inner, {"list": {"elements": [{"c": "3"}]}}]}}
    assert generate(nested, AppSetContext(None, go_engine=GO), go=False) == [{"a": "1", "b": "2", "c": "3"}]
    too_deep = {"matrix": {"generators": [nested, lst]}}
    with pytest.raises(GeneratorError, match="one level"):
        generate(too_deep, AppSetContext(None, go_engine=GO), go=False)


def test_one_generator_per_entry() -> None:
    with pytest.raises(GeneratorError, match="exactly one generator"):
        generate({"list": {"elements": []}, "clusters": {}}, AppSetContext(None, go_engine=GO), go=False)


# ------------------------------------------------------------------ merge


def test_merge_overrides_base_by_merge_keys_and_drops_unmatched() -> None:
    clusters = [
        cluster("engineering-dev", "https://dev", env="dev"),
        cluster("engineering-prod", "https://prod", env="prod"),
        cluster("staging", "https://staging", env="staging"),
    ]
    gen = {
        "merge": {
            "mergeKeys": ["server"],
            "generators": [
                {
                    "clusters": {
                        "selector": {"matchLabels": {SECRET: "cluster"}},
                        "values": {"kafka": "true", "redis": "false"},
                    }
                },
                {"clusters": {"selector": {"matchLabels": {"env": "prod"}}, "values": {"redis": "true"}}},
                {
                    "list": {
                        "elements": [
                            {"server": "https://dev", "values.redis": "dev-override"},
                            {"server": "https://unknown", "x": "y"},
                        ]
                    }
                },
            ],
        }
    }
    sets = generate(gen, AppSetContext(None, clusters, go_engine=GO), go=False)
    by_name = {s["name"]: s for s in sets}
    assert len(sets) == 3
    assert by_name["engineering-prod"]["values.redis"] == "true"
    assert by_name["engineering-dev"]["values.redis"] == "dev-override"
    assert by_name["staging"]["values.redis"] == "false"
    assert all("x" not in s for s in sets)


def test_merge_keys_must_be_unique_within_a_child() -> None:
    gen = {
        "merge": {
            "mergeKeys": ["k"],
            "generators": [{"list": {"elements": [{"k": "1"}, {"k": "1"}]}}, {"list": {"elements": []}}],
        }
    }
    with pytest.raises(GeneratorError, match="not unique by the merge keys"):
        generate(gen, AppSetContext(None, go_engine=GO), go=False)


# ------------------------------------------------------------------ templates


def test_generator_level_template_overrides_spec_template_field_by_field() -> None:
    gen = {"list": {"elements": [{"cluster": "dev"}]}, "template": {"spec": {"project": "special"}}}
    (app,) = expand_appset(
        appset([gen], tmpl("{{cluster}}-app", dest="https://x")), AppSetContext(None, go_engine=GO)
    )
    assert app["spec"]["project"] == "special"
    assert app["spec"]["source"]["path"] == "p"


def test_destination_with_name_and_server_is_an_error() -> None:
    t = tmpl("a", dest="https://x")
    t["spec"]["destination"]["name"] = "in-cluster"
    with pytest.raises(GeneratorError, match="both name and server"):
        expand_appset(appset([{"list": {"elements": [{"a": "b"}]}}], t), AppSetContext(None, go_engine=GO))


def test_missingkey_error_fails_for_the_synthetic_local_cluster() -> None:
    spec = appset(
        [{"clusters": {}}],
        tmpl('{{index .metadata.labels "env"}}', dest="{{.server}}"),
        goTemplate=True,
        goTemplateOptions=["missingkey=error"],
    )
    with pytest.raises(GeneratorError):
        expand_appset(spec, AppSetContext(None, CLUSTERS, go_engine=GO))


def test_go_template_functions_through_the_real_engine() -> None:
    data = {"name": "My_Cluster", "path": {"basename": "app-x"}, "metadata": {"labels": {"env": "prod"}}}
    ctx = AppSetContext(None, go_engine=GO)

    def go(text: str, *, strict: bool = False) -> str:
        return str(render_all(text, [data], ctx, True, strict)[0])

    assert go('{{ .name | lower | replace "_" "-" }}') == "my-cluster"
    assert go('{{ printf "%s-%s" .path.basename (index .metadata.labels "env") }}') == "app-x-prod"
    assert go('{{ default "none" .missing }}/{{ trimPrefix "app-" .path.basename | upper }}') == "none/X"
    assert go("{{ .name | normalize }}") == "my-cluster"
    assert go('{{- if eq (index .metadata.labels "env") "prod" }}big{{ else }}small{{ end -}}') == "big"
    assert go("{{ range $k, $v := .metadata.labels }}{{ $k }}={{ $v }}{{ end }}") == "env=prod"
    with pytest.raises(TemplateError, match='map has no entry for key "nope"'):
        go("{{ .nope }}", strict=True)
