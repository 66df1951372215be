"""ApplicationSets in the shapes real fleets write them: add-on catalogs over labelled cluster
secrets, Go templates with sprig, nested merges, templatePatch, matrix of git and clusters, and
generators that need a live service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.domain.model import Severity
from bot.domain.render.argocd import (
    AppSetContext,
    ClusterInfo,
    GeneratorError,
    expand_appset,
    generate,
    strategic_merge,
)
from bot.domain.render.discovery import discover
from bot.domain.render.merge import deep_merge
from bot.render_runtime.gotemplate_runner import default_runner
from tests.render.conftest import KEY, write

GO = default_runner()  # the process's sandboxed Go template engine, created on first use

SECRET = "argocd.argoproj.io/secret-type"
HUB = ClusterInfo("in-cluster", "https://kubernetes.default.svc", labels={SECRET: "cluster", "env": "hub"})
FLEET = [
    ClusterInfo(
        f"eks-{env}-{region}",
        f"https://{env}-{region}.eks.example.com",
        labels={SECRET: "cluster", "env": env, "region": region, "enable_ingress": "true"},
        annotations={"addons_repo_revision": "main" if env == "prod" else "dev"},
    )
    for env in ("dev", "prod")
    for region in ("use1", "euw1")
]


def appset(spec: dict[str, Any], name: str = "addons") -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"goTemplate": True, "goTemplateOptions": ["missingkey=error"], **spec},
    }


def by_name(apps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a for a in apps}


def test_addon_catalog_over_labelled_cluster_secrets_with_sprig() -> None:
    spec = appset(
        {
            "generators": [
                {
                    "clusters": {
                        "selector": {"matchLabels": {"enable_ingress": "true"}},
                        "values": {
                            "addonChart": "ingress-nginx",
                            "revision": "{{ .metadata.annotations.addons_repo_revision }}",
                        },
                    }
                }
            ],
            "template": {
                "metadata": {
                    "name": '{{ .values.addonChart }}-{{ .name | trimPrefix "eks-" | replace "_" "-" }}',
                    "labels": {"env": '{{ index .metadata.labels "env" | default "dev" }}'},
                },
                "spec": {
                    "project": '{{ if eq .metadata.labels.env "prod" }}production{{ else }}default{{ end }}',
                    "source": {
                        "repoURL": "https://github.com/example/addons",
                        "targetRevision": "{{ .values.revision }}",
                        "path": '{{ printf "charts/%s/%s" .values.addonChart .metadata.labels.env }}',
                    },
                    "destination": {
                        "name": "{{ .name }}",
                        "namespace": "{{ .values.addonChart | upper | lower }}",
                    },
                },
            },
        }
    )
    apps = by_name(expand_appset(spec, AppSetContext(None, [HUB, *FLEET], go_engine=GO)))
    assert set(apps) == {
        "ingress-nginx-dev-use1",
        "ingress-nginx-dev-euw1",
        "ingress-nginx-prod-use1",
        "ingress-nginx-prod-euw1",
    }
    prod = apps["ingress-nginx-prod-euw1"]
    assert prod["spec"]["project"] == "production"
    assert prod["spec"]["source"] == {
        "repoURL": "https://github.com/example/addons",
        "targetRevision": "main",
        "path": "charts/ingress-nginx/prod",
    }
    assert prod["metadata"] == {
        "name": "ingress-nginx-prod-euw1",
        "labels": {"env": "prod"},
        "namespace": "argocd",
    }
    assert apps["ingress-nginx-dev-use1"]["spec"]["source"]["targetRevision"] == "dev"


def test_range_over_a_flat_cluster_list_in_one_application() -> None:
    spec = appset(
        {
            "generators": [{"clusters": {"selector": {"matchLabels": {"env": "prod"}}, "flatList": True}}],
            "template": {
                "metadata": {"name": "fleet-dashboard"},
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": "https://github.com/example/platform",
                        "path": "dashboard",
                        "helm": {
                            "values": (
                                "clusters:\n"
                                "{{- range $i, $c := .clusters }}\n"
                                "  - name: {{ $c.name }}\n"
                                "    index: {{ $i }}\n"
                                '    region: {{ index $c.metadata.labels "region" }}\n'
                                "{{- end }}\n"
                            )
                        },
                    },
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "dash"},
                },
            },
        }
    )
    (app,) = expand_appset(spec, AppSetContext(None, [HUB, *FLEET], go_engine=GO))
    assert app["spec"]["source"]["helm"]["values"] == (
        "clusters:\n  - name: eks-prod-use1\n    index: 0\n    region: use1\n"
        "  - name: eks-prod-euw1\n    index: 1\n    region: euw1\n"
    )


def test_merge_generator_merges_nested_values_key_by_key() -> None:
    spec = appset(
        {
            "generators": [
                {
                    "merge": {
                        "mergeKeys": ["server"],
                        "generators": [
                            {
                                "clusters": {
                                    "values": {"chartVersion": "1.0.0", "replicas": "2", "tier": "standard"}
                                }
                            },
                            {
                                "clusters": {
                                    "selector": {"matchLabels": {"env": "prod"}},
                                    "values": {"replicas": "5"},
                                }
                            },
                            {
                                "list": {
                                    "elements": [
                                        {
                                            "server": "https://prod-use1.eks.example.com",
                                            "values": {"tier": "gold"},
                                            "extra": {"alerts": {"pager": True}},
                                        }
                                    ]
                                }
                            },
                        ],
                    }
                }
            ],
            "template": {
                "metadata": {"name": "{{ .name }}"},
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": "https://github.com/example/addons",
                        "path": "app",
                        "targetRevision": "{{ .values.chartVersion }}",
                        "helm": {
                            "parameters": [
                                {"name": "replicas", "value": "{{ .values.replicas }}"},
                                {"name": "tier", "value": "{{ .values.tier }}"},
                                {
                                    "name": "pager",
                                    "value": '{{ dig "extra" "alerts" "pager" false . }}',
                                },
                            ]
                        },
                    },
                    "destination": {"server": "{{ .server }}"},
                },
            },
        }
    )
    apps = by_name(expand_appset(spec, AppSetContext(None, FLEET, go_engine=GO)))

    def params(name: str) -> dict[str, str]:
        src = apps[name]["spec"]["source"]
        return {
            "version": src["targetRevision"],
            **{p["name"]: p["value"] for p in src["helm"]["parameters"]},
        }

    assert params("eks-prod-use1") == {"version": "1.0.0", "replicas": "5", "tier": "gold", "pager": "true"}
    assert params("eks-prod-euw1") == {
        "version": "1.0.0",
        "replicas": "5",
        "tier": "standard",
        "pager": "false",
    }
    assert params("eks-dev-use1") == {
        "version": "1.0.0",
        "replicas": "2",
        "tier": "standard",
        "pager": "false",
    }
    assert "in-cluster" in apps  # the base generator's synthetic local cluster is kept, unmatched


def test_merge_override_is_mergo_with_override() -> None:
    base = {"a": {"x": 1, "y": {"z": 1}}, "l": [1, 2], "s": "keep"}
    over = {"a": {"y": {"w": 2}}, "l": [3], "n": None}
    assert deep_merge(base, over) == {
        "a": {"x": 1, "y": {"z": 1, "w": 2}},
        "l": [3],
        "s": "keep",
        "n": None,
    }
    assert base == {"a": {"x": 1, "y": {"z": 1}}, "l": [1, 2], "s": "keep"}


def test_template_patch_is_rendered_and_merged_into_each_application() -> None:
    spec = appset(
        {
            "generators": [
                {
                    "list": {
                        "elements": [
                            {
                                "name": "web",
                                "autoSync": True,
                                "prune": False,
                                "valueFiles": ["common.yaml", "web.yaml"],
                            },
                            {"name": "batch", "autoSync": False},
                        ]
                    }
                }
            ],
            "template": {
                "metadata": {"name": "{{ .name }}", "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": "https://github.com/example/apps",
                        "path": "apps/{{ .name }}",
                        "helm": {"releaseName": "x"},
                    },
                    "destination": {"name": "in-cluster", "namespace": "{{ .name }}"},
                    "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
                },
            },
            "templatePatch": (
                "metadata:\n"
                "  finalizers: [argocd.argoproj.io/extra]\n"
                "spec:\n"
                "  project: escalated\n"
                "  source:\n"
                "    helm:\n"
                "      valueFiles:\n"
                '      {{- range (get . "valueFiles" | default list) }}\n'
                "        - {{ . }}\n"
                "      {{- end }}\n"
                "{{- if .autoSync }}\n"
                "  syncPolicy:\n"
                "    automated:\n"
                "      prune: {{ .prune }}\n"
                "{{- end }}\n"
            ),
        }
    )
    apps = by_name(expand_appset(spec, AppSetContext(None, go_engine=GO)))
    web, batch = apps["web"], apps["batch"]
    assert web["spec"]["source"]["helm"] == {"releaseName": "x", "valueFiles": ["common.yaml", "web.yaml"]}
    assert web["spec"]["syncPolicy"] == {
        "syncOptions": ["CreateNamespace=true"],
        "automated": {"prune": False},
    }
    assert web["metadata"]["finalizers"] == [
        "resources-finalizer.argocd.argoproj.io",
        "argocd.argoproj.io/extra",
    ]
    assert batch["spec"]["syncPolicy"] == {"syncOptions": ["CreateNamespace=true"]}
    assert web["spec"]["project"] == batch["spec"]["project"] == "default"  # a patch cannot change it
    # an empty `valueFiles:` renders as null, which a strategic merge patch reads as "delete"
    assert batch["spec"]["source"]["helm"] == {"releaseName": "x"}


def test_strategic_merge_directives() -> None:
    app = {"spec": {"source": {"path": "a", "helm": {"values": "x"}}, "ignoreDifferences": [{"kind": "A"}]}}
    patched = strategic_merge(
        app, {"spec": {"source": {"helm": None, "path": "b"}, "ignoreDifferences": [{"kind": "B"}]}}
    )
    assert patched == {"spec": {"source": {"path": "b"}, "ignoreDifferences": [{"kind": "B"}]}}
    assert strategic_merge(app, {"spec": {"$patch": "replace", "project": "p"}}) == {"spec": {"project": "p"}}
    with pytest.raises(GeneratorError, match="templatePatch must render to a map"):
        expand_appset(
            appset(
                {
                    "generators": [{"list": {"elements": [{"n": "a"}]}}],
                    "template": {"metadata": {"name": "{{ .n }}"}, "spec": {}},
                    "templatePatch": "- not a map",
                }
            ),
            AppSetContext(None, go_engine=GO),
        )


def test_matrix_of_git_directories_and_clusters(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "addons/cert-manager/kustomization.yaml": "resources: []\n",
            "addons/external-dns/kustomization.yaml": "resources: []\n",
            "addons/README.md": "catalog\n",
        },
    )
    spec = appset(
        {
            "generators": [
                {
                    "matrix": {
                        "generators": [
                            {
                                "git": {
                                    "repoURL": "https://github.com/example/fleet",
                                    "revision": "HEAD",
                                    "directories": [{"path": "addons/*"}],
                                }
                            },
                            {
                                "clusters": {
                                    "selector": {"matchLabels": {"env": "prod"}},
                                    # `addon` resolves with the git parameters; `release` has no
                                    # key there and is rendered later with the cluster's own
                                    "values": {"addon": "{{ .path.basename }}", "release": "{{ .name }}-r"},
                                }
                            },
                        ]
                    }
                }
            ],
            "template": {
                "metadata": {
                    "name": '{{ .values.addon }}-{{ .name | trimPrefix "eks-" }}',
                    "labels": {"release": "{{ .values.release }}"},
                },
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "https://github.com/example/fleet", "path": "{{ .path.path }}"},
                    "destination": {"server": "{{ .server }}", "namespace": "{{ .path.basename }}"},
                },
            },
        }
    )
    apps = by_name(expand_appset(spec, AppSetContext(tmp_path, FLEET, go_engine=GO)))
    assert set(apps) == {
        "cert-manager-prod-use1",
        "cert-manager-prod-euw1",
        "external-dns-prod-use1",
        "external-dns-prod-euw1",
    }
    assert apps["external-dns-prod-use1"]["spec"]["source"]["path"] == "addons/external-dns"
    assert (
        apps["external-dns-prod-use1"]["spec"]["destination"]["server"] == "https://prod-use1.eks.example.com"
    )
    assert apps["external-dns-prod-use1"]["metadata"]["labels"] == {"release": "eks-prod-use1-r"}


@pytest.mark.parametrize(
    "generator",
    [
        {"pullRequest": {"github": {"owner": "example", "repo": "apps"}, "requeueAfterSeconds": 60}},
        {"scmProvider": {"github": {"organization": "example"}}},
        {"clusterDecisionResource": {"configMapRef": "ocm-placement", "name": "placement"}},
        {"plugin": {"configMapRef": {"name": "my-plugin"}, "input": {"parameters": {"a": "b"}}}},
    ],
)
def test_live_service_generators_generate_nothing(generator: dict[str, Any]) -> None:
    ctx = AppSetContext(None, FLEET, go_engine=GO)
    assert generate(generator, ctx, go=True) == []
    assert ctx.unreachable == {next(iter(generator))}
    matrix = {"matrix": {"generators": [{"clusters": {}}, generator]}}
    assert generate(matrix, ctx, go=True) == []


def test_discovery_names_the_applicationset_whose_generators_need_a_live_service(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "argocd/previews.yaml": (
                "apiVersion: argoproj.io/v1alpha1\n"
                "kind: ApplicationSet\n"
                "metadata: {name: previews, namespace: argocd}\n"
                "spec:\n"
                "  goTemplate: true\n"
                "  generators:\n"
                "  - pullRequest:\n"
                "      github: {owner: example, repo: shop}\n"
                "  - list:\n"
                "      elements: [{branch: main}]\n"
                "  template:\n"
                "    metadata: {name: 'shop-{{ .branch | slugify }}'}\n"
                "    spec:\n"
                "      project: default\n"
                "      source: {repoURL: https://github.com/example/shop, path: deploy}\n"
                "      destination: {server: https://kubernetes.default.svc, namespace: shop}\n"
            ),
            "deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        },
    )
    disc = discover(tmp_path, {}, secret_key=KEY, go_engine=GO)
    notices = [f for f in disc.findings if f.rule == "render.applicationset"]
    assert [(f.severity, f.message) for f in notices] == [
        (
            Severity.NOTICE,
            "ApplicationSet previews: generators `pullRequest` ask a live service and generate nothing "
            "in this preview",
        )
    ]
    assert "argocd/shop-main" in {t.name for t in disc.targets}
    assert not any(f.blocking for f in disc.findings)
