"""Prometheus metrics of the service, one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: The webhook events GitHub documents. Metrics label any other event name ``other`` (even on a
#: verified delivery), so label sets stay bounded whatever arrives.
GITHUB_EVENTS = frozenset(
    [
        "branch_protection_configuration",
        "branch_protection_rule",
        "check_run",
        "check_suite",
        "code_scanning_alert",
        "commit_comment",
        "create",
        "custom_property",
        "custom_property_values",
        "delete",
        "dependabot_alert",
        "deploy_key",
        "deployment",
        "deployment_protection_rule",
        "deployment_review",
        "deployment_status",
        "discussion",
        "discussion_comment",
        "fork",
        "github_app_authorization",
        "gollum",
        "installation",
        "installation_repositories",
        "installation_target",
        "issue_comment",
        "issues",
        "label",
        "marketplace_purchase",
        "member",
        "membership",
        "merge_group",
        "meta",
        "milestone",
        "org_block",
        "organization",
        "package",
        "page_build",
        "personal_access_token_request",
        "ping",
        "project",
        "project_card",
        "project_column",
        "projects_v2",
        "projects_v2_item",
        "projects_v2_status_update",
        "public",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "push",
        "registry_package",
        "release",
        "repository",
        "repository_advisory",
        "repository_dispatch",
        "repository_import",
        "repository_ruleset",
        "repository_vulnerability_alert",
        "secret_scanning_alert",
        "secret_scanning_alert_location",
        "secret_scanning_scan",
        "security_advisory",
        "security_and_analysis",
        "sponsorship",
        "star",
        "status",
        "sub_issues",
        "team",
        "team_add",
        "watch",
        "workflow_dispatch",
        "workflow_job",
        "workflow_run",
    ]
)
OTHER_EVENT = "other"


def event_label(event: str) -> str:
    """Return ``event`` when GitHub documents it, else ``other`` (bounded metric labels)."""
    return event if event in GITHUB_EVENTS else OTHER_EVENT


class Metrics:
    """The service's counters and gauges, exposed at ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "gitops_bot_deliveries",
            "Webhook deliveries by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "gitops_bot_queue_depth", "Deliveries by store status", ["status"], registry=self.registry
        )
        self.processing_seconds = Histogram(
            "gitops_bot_processing_seconds",
            "Time from claim to completion of a delivery",
            ["event"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "gitops_bot_ack_seconds",
            "Time to acknowledge a webhook delivery",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.github_calls = Counter(
            "gitops_bot_github_api_calls",
            "GitHub REST calls by method and status",
            ["method", "status"],
            registry=self.registry,
        )
        self.rate_limit_remaining = Gauge(
            "gitops_bot_github_rate_limit_remaining",
            "The last x-ratelimit-remaining seen from GitHub",
            registry=self.registry,
        )
        self.rate_limit_low = Gauge(
            "gitops_bot_github_rate_limit_low",
            "1 while the GitHub quota is nearly spent and writes that can wait are postponed",
            registry=self.registry,
        )
        self.deferred_writes = Counter(
            "gitops_bot_github_deferred_writes",
            "Writes postponed because the GitHub quota was nearly spent, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "gitops_bot_connections_refused",
            "Connections refused because GITOPS_BOT_MAX_CONNECTIONS were open",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the metrics in Prometheus text format."""
        return generate_latest(self.registry)
