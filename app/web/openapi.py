"""`GET /openapi.json`: the HTTP API described in OpenAPI 3.0, every path and every answer.

Written by hand next to the views it describes; a schemathesis run against a live worker
(tests/e2e/test_openapi.py) checks that no request gets a 5xx and that every response
matches this description.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from faust.web import Request, Response, View

from app.domain.codec import NAME

UUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-f-]{36}$"}
TIME = {"type": "string", "format": "date-time"}
NAME_SCHEMA = {"type": "string", "pattern": NAME.pattern, "maxLength": 128}
VALUE = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
FEATURE = {
    "nullable": True,
    "oneOf": [
        {"type": "number"},
        {"type": "string"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "number"}},
    ],
}
ANY_OBJECT = {"type": "object", "additionalProperties": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "details"],
        "properties": {"error": {"type": "string"}, "details": {}},
    },
    "PredictionEvent": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "schema_version",
            "event_id",
            "model",
            "model_version",
            "occurred_at",
            "features",
            "prediction",
        ],
        "properties": {
            "schema_version": {"type": "integer", "enum": [1]},
            "event_id": UUID,
            "model": NAME_SCHEMA,
            "model_version": NAME_SCHEMA,
            "occurred_at": TIME,
            "features": {"type": "object", "additionalProperties": FEATURE},
            "prediction": {
                "type": "object",
                "additionalProperties": False,
                "required": ["value"],
                "properties": {
                    "value": VALUE,
                    "scores": {"type": "object", "additionalProperties": {"type": "number"}},
                },
            },
            "entity_id": {"type": "string", "nullable": True},
            "erased": {
                "type": "boolean",
                "description": "Set by an erasure on the redacted records it leaves in the "
                "log; refused from clients.",
            },
            "context": ANY_OBJECT,
        },
    },
    "ErasureRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "At least one of entities or events.",
        "properties": {
            "entities": {
                "type": "array",
                "maxItems": 10000,
                "items": {"type": "string", "minLength": 1, "maxLength": 256},
            },
            "events": {
                "type": "array",
                "maxItems": 10000,
                "items": {"type": "string", "format": "uuid"},
            },
            "reason": {"type": "string", "maxLength": 1000},
            "requested_by": {"type": "string", "minLength": 1, "maxLength": 256},
        },
    },
    "TagEvent": {
        "type": "object",
        "additionalProperties": False,
        "required": ["schema_version", "tag_id", "event_id", "tagged_at"],
        "properties": {
            "schema_version": {"type": "integer", "enum": [1]},
            "tag_id": UUID,
            "event_id": UUID,
            "label": {**VALUE, "nullable": True},
            "datasets": {"type": "array", "items": NAME_SCHEMA, "maxItems": 64},
            "source": {"type": "string", "maxLength": 256},
            "tagged_at": TIME,
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["accepted", "count"],
        "properties": {
            "accepted": {"type": "array", "items": {"type": "string"}},
            "count": {"type": "integer"},
        },
    },
    "PredictRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["features"],
        "properties": {
            "features": {"type": "object", "additionalProperties": FEATURE},
            "event_id": UUID,
            "entity_id": {"type": "string", "nullable": True},
            "context": ANY_OBJECT,
            "occurred_at": TIME,
        },
    },
    "Prediction": {
        "type": "object",
        "required": ["event_id", "prediction"],
        "properties": {
            "event_id": {"type": "string"},
            "prediction": {
                "type": "object",
                "required": ["value"],
                "properties": {"value": VALUE},
            },
            # Features the request left out, which the model imputed (its training mean for
            # a number, an unseen category for a string); absent when none were.
            "imputed": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Dataset": {
        "type": "object",
        "required": ["name", "size", "labeled", "new_since_training"],
        "properties": {
            "name": {"type": "string"},
            "size": {"type": "integer"},
            "labeled": {"type": "integer"},
            "new_since_training": {"type": "integer"},
            "label_summary": ANY_OBJECT,
            "updated_at": {"type": "string", "nullable": True},
        },
    },
    "Model": {
        "type": "object",
        "required": ["model", "champion", "versions"],
        "properties": {
            "model": {"type": "string"},
            "champion": {"type": "string", "nullable": True},
            "champions": {"type": "array", "items": {"type": "string"}},
            "versions": {"type": "array", "items": ANY_OBJECT},
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "invalid request; `details` says what and where",
        401: "a bearer token is required (MODELVIEW_API_TOKEN is set)",
        403: "the bearer token is not valid",
        404: "not found",
        409: "the model has no champion yet, or the event_id names a prediction of other features",
        410: "the event was erased (a prediction naming it must use a new event_id)",
        413: "body or event too large",
        422: "the model produced a value that cannot be served",
        503: "not available now (capture buffer full, object store down, or partitions "
        "without a ready owner, named in `details.partitions`); retry",
    }
    return {str(s): _json(_ref("Error"), reasons[s]) for s in statuses}


def _one_or_many(name: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [_ref(name), {"type": "array", "items": _ref(name), "minItems": 1}]
                }
            }
        },
    }


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


READ = (401, 403)
WRITE = (400, 401, 403, 413)


def document() -> dict[str, Any]:
    publish = {
        "202": _json(_ref("Accepted"), "in the log"),
        **_errors(*WRITE),
        **_errors(503),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "modelview",
            "version": "1",
            "description": "Event-sourced machine learning: predictions and tags in, views, "
            "models and served predictions out.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/v1/predictions": {
                "post": {
                    "summary": "Publish prediction events",
                    "requestBody": _one_or_many("PredictionEvent"),
                    "responses": publish,
                }
            },
            "/v1/tags": {
                "post": {
                    "summary": "Publish tags",
                    "requestBody": _one_or_many("TagEvent"),
                    "responses": publish,
                }
            },
            "/v1/predictions/{event_id}": {
                "get": {
                    "summary": "An event, its latest tag and the example they form",
                    "parameters": [_path_param("event_id")],
                    "responses": {
                        "200": _json(ANY_OBJECT, "the event"),
                        **_errors(404, 410, *READ),
                    },
                }
            },
            "/v1/datasets": {
                "get": {
                    "summary": "Every dataset",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["datasets"],
                                "properties": {
                                    "datasets": {"type": "array", "items": _ref("Dataset")}
                                },
                            },
                            "datasets",
                        ),
                        **_errors(*READ, 503),
                    },
                }
            },
            "/v1/datasets/{name}": {
                "get": {
                    "summary": "One dataset",
                    "parameters": [_path_param("name")],
                    "responses": {
                        "200": _json(_ref("Dataset"), "the dataset"),
                        **_errors(404, *READ, 503),
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "The registry: every model, its champion and versions",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["models"],
                                "properties": {"models": {"type": "array", "items": ANY_OBJECT}},
                            },
                            "models",
                        ),
                        **_errors(*READ, 503),
                    },
                }
            },
            "/v1/models/{model}": {
                "get": {
                    "summary": "One model: versions with status, lineage, validation",
                    "parameters": [_path_param("model")],
                    "responses": {
                        "200": _json(_ref("Model"), "the model"),
                        **_errors(404, *READ, 503),
                    },
                }
            },
            "/v1/models/{model}/metrics": {
                "get": {
                    "summary": "Online metrics per version, overall and by hour or by day",
                    "parameters": [
                        _path_param("model"),
                        {"name": "from", "in": "query", "schema": {"type": "string"}},
                        {"name": "to", "in": "query", "schema": {"type": "string"}},
                        # "hour" or "day"; not an enum: schemathesis 4's coverage phase crashes
                        # in hypothesis on one (SystemError in ast.parse, Python 3.11.7).
                        {"name": "bucket", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(ANY_OBJECT, "metrics"),
                        **_errors(400, 404, *READ, 503),
                    },
                }
            },
            "/v1/models/{model}/predict": {
                "post": {
                    "summary": "Predict with the champion; each prediction is captured",
                    "parameters": [_path_param("model")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref("PredictRequest"),
                                        {
                                            "type": "array",
                                            "items": _ref("PredictRequest"),
                                            "minItems": 1,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["model", "model_version"],
                                "properties": {
                                    "model": {"type": "string"},
                                    "model_version": {"type": "string"},
                                    "predictions": {
                                        "type": "array",
                                        "items": _ref("Prediction"),
                                    },
                                    "event_id": {"type": "string"},
                                    "prediction": ANY_OBJECT,
                                },
                            },
                            "one answer per request, in order",
                        ),
                        **_errors(*WRITE, 409, 410, 422, 503),
                    },
                }
            },
            "/v1/models/{model}/versions/{version}/validation": {
                "get": {
                    "summary": "The latest validation report of a version",
                    "parameters": [
                        _path_param("model"),
                        _path_param("version"),
                        {"name": "events", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(ANY_OBJECT, "the report"),
                        **_errors(400, 404, 503, *READ),
                    },
                }
            },
            "/v1/erasures": {
                "post": {
                    "summary": "Forget entities or events: views, S3, snapshots; flag models",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ErasureRequest")}},
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["erasure_id", "status"],
                                "properties": {
                                    "erasure_id": {"type": "string", "format": "uuid"},
                                    "status": {"type": "string"},
                                },
                            },
                            "the request is in the log; follow it at `status`",
                        ),
                        **_errors(*WRITE),
                    },
                }
            },
            "/v1/erasures/{erasure_id}": {
                "get": {
                    "summary": "An erasure's request and how far each stage has gone",
                    "parameters": [_path_param("erasure_id")],
                    "responses": {
                        "200": _json(ANY_OBJECT, "who, when, what, why, done, and stages"),
                        **_errors(404, 503, *READ),
                    },
                }
            },
            "/v1/predictions/{event_id}/lineage": {
                "get": {
                    "summary": "The snapshots, versions and validations that used an event",
                    "parameters": [_path_param("event_id")],
                    "responses": {
                        "200": _json(
                            ANY_OBJECT, "snapshots, versions (fitted or not), validations"
                        ),
                        **_errors(503, *READ),
                    },
                }
            },
            "/v1/tags/{tag_id}/lineage": {
                "get": {
                    "summary": "The snapshots, versions and validations that used a tag's label",
                    "parameters": [_path_param("tag_id")],
                    "responses": {
                        "200": _json(
                            ANY_OBJECT, "snapshots, versions (fitted or not), validations"
                        ),
                        **_errors(503, *READ),
                    },
                }
            },
            "/v1/models/{model}/drift": {
                "get": {
                    "summary": "Live traffic against the champion's training snapshot, as PSI",
                    "parameters": [
                        _path_param("model"),
                        *(
                            {"name": name, "in": "query", "schema": {"type": "string"}}
                            for name in ("from", "to", "version", "against", "bucket")
                        ),
                    ],
                    "responses": {
                        "200": _json(ANY_OBJECT, "per field: psi, drifted, statistics"),
                        **_errors(400, 404, 409, 503, *READ),
                    },
                }
            },
            "/v1/models/{model}/scores/{job}": {
                "get": {
                    "summary": "A batch scoring job: its state, counts, bad rows and results",
                    "parameters": [_path_param("model"), _path_param("job")],
                    "responses": {
                        "200": _json(ANY_OBJECT, "the job's status and its Parquet's location"),
                        **_errors(404, 503, *READ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Readiness, lag, ingestion, flush, training and serving status",
                    "security": [],
                    "responses": {
                        "200": _json(ANY_OBJECT, "ready: the same body, status ok"),
                        "503": _json(ANY_OBJECT, "not ready yet: the same body, status starting"),
                    },
                }
            },
            "/livez": {
                "get": {
                    "summary": "Liveness: the process answers, ready or not",
                    "security": [],
                    "responses": {"200": _json(ANY_OBJECT, "alive")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(*READ),
                    },
                }
            },
            "/dashboard": {
                "get": {
                    "summary": "The dashboard page (its data comes from the API above)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "HTML",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {"200": _json(ANY_OBJECT, "OpenAPI 3.0"), **_errors(*READ)},
                }
            },
        },
    }


class OpenApi(View):
    async def get(self, request: Request) -> Response:
        return self.json(_described())


@cache
def _described() -> dict[str, Any]:
    return document()
