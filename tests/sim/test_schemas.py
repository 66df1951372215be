"""The schema helpers: OpenAPI ``nullable`` conversion and conforming real objects to a schema."""

from __future__ import annotations

from bot.sim.schemas import OpenAPI, WebhookSchemas, convert_nullable


def test_nullable_becomes_a_null_alternative() -> None:
    assert convert_nullable({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert convert_nullable({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert convert_nullable({"$ref": "#/x", "nullable": True}) == {
        "anyOf": [{"$ref": "#/x"}, {"type": "null"}]
    }
    assert convert_nullable({"properties": {"a": {"type": "integer", "nullable": False}}}) == {
        "properties": {"a": {"type": "integer"}}
    }


def test_route_matching_prefers_literal_segments(spec: OpenAPI) -> None:
    assert (
        spec.find("GET", "/repos/o/r/commits/abc/status")[0].operation_id
        == "repos/get-combined-status-for-ref"
    )  # type: ignore[index]
    assert spec.find("GET", "/repos/o/r/commits/abc")[0].operation_id == "repos/get-commit"  # type: ignore[index]
    op, params = spec.find("GET", "/repos/o/r/contents/a/b/c.yaml")  # type: ignore[misc]
    assert (op.operation_id, params["path"]) == ("repos/get-content", "a/b/c.yaml")
    assert spec.find("PUT", "/repos/o/r/contents/x") is None


def test_conform_keeps_real_values_drops_forbidden_and_fills_required(hook_schemas: WebhookSchemas) -> None:
    schema = hook_schemas.schema_for("pull_request", "opened")
    payload = {
        "action": "opened",
        "number": 7,
        "not_in_schema": True,
        "pull_request": {"number": 7, "title": "real title", "state": "open", "merged_by": None},
    }
    shaped = hook_schemas.conform(schema, payload)
    assert "not_in_schema" not in shaped
    assert shaped["pull_request"]["title"] == "real title" and shaped["number"] == 7
    assert shaped["pull_request"]["merged_by"] is None  # narrowed to null by the opened schema
    assert shaped["pull_request"]["active_lock_reason"] is None
    assert hook_schemas.errors("pull_request", "opened", shaped) == []


def test_conform_follows_the_discriminator(spec: OpenAPI) -> None:
    op = spec.by_id("repos/get-content")
    schema = spec.response_schema(op, 200)
    assert schema is not None
    shaped = spec.conform(schema, {"type": "file", "name": "a", "path": "a", "content": "eA==\n"})
    assert shaped["encoding"] == "" and shaped["content"] == "eA==\n"
    assert spec.errors(schema, shaped) == []


def test_request_errors_use_githubs_words(spec: OpenAPI) -> None:
    schema = spec.request_schema(spec.by_id("issues/create-comment"))
    assert schema is not None
    assert spec.request_errors(schema, {}) == ['"body" wasn\'t supplied.']
    assert spec.request_errors(schema, {"body": "ok"}) == []
