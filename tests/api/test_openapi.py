"""The OpenAPI document names each shared schema once, so generated clients get one type each."""

from collections import Counter
from typing import Any

import pytest

from dployr.api import deploy_schemas as ds
from dployr.api import schemas
from dployr.api.openapi import _Refs, named_schemas
from dployr.api.validation import validate
from dployr.errors import ValidationError

PREFIX = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": PREFIX + name}


def inline_enums(value: Any, found: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        if "enum" in value:
            found.append(tuple(value["enum"]))
        for item in value.values():
            inline_enums(item, found)
    elif isinstance(value, list):
        for item in value:
            inline_enums(item, found)
    return found


async def test_shared_schemas_are_components_used_by_ref(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    components = doc["components"]["schemas"]
    concepts = (
        "Service", "ServicePage", "Deployment", "DeploymentPage", "Route", "Webhook", "Delivery",
        "ApiToken", "Credential", "Project", "User", "Database", "Backup", "Volume", "Error",
        "ServiceStatus", "DeploymentStatus", "DatabaseStatus", "BackupStatus", "DeliveryStatus",
        "StageStatus", "Role", "ProjectStatus", "CreateDeployment", "Register",
    )  # fmt: skip
    assert set(concepts) <= set(components)
    service = components["Service"]["properties"]
    assert service["status"] == ref("ServiceStatus")
    assert components["ServiceRuntimeStatus"]["properties"]["status"] == ref("ServiceStatus")
    assert components["ServiceStatus"] == {
        "enum": ["running", "stopped", "starting", "crashed", "unknown"]
    }
    assert service["current_deployment"] == {"anyOf": [{"type": "null"}, ref("DeploymentSummary")]}
    assert components["Deployment"]["properties"]["stages"]["items"] == ref("Stage")
    post = doc["paths"]["/api/v1/deployments"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == ref("CreateDeployment")
    status_filter = next(
        p for p in doc["paths"]["/api/v1/deployments"]["get"]["parameters"] if p["name"] == "status"
    )
    assert status_filter["schema"] == ref("DeploymentStatus")
    # No list of values is spelled out twice: a generator would make two types of one concept,
    # or drop both when it names them alike (openapi-python-client: "conflicting enums").
    enums = Counter(inline_enums(doc, []))
    assert [values for values, n in enums.items() if n > 1] == []


def test_the_document_refers_to_named_schemas_and_leaves_them_whole():
    before = repr(ds.CREATE_DEPLOYMENT)
    refs = _Refs(named_schemas())
    body = refs(ds.CREATE_DEPLOYMENT, root=ds.CREATE_DEPLOYMENT)
    assert body["properties"]["strategy"] == ref("Strategy")
    assert body["properties"]["volumes"] == {
        "type": "array",
        "maxItems": 16,
        "items": ref("VolumeMountInput"),
    }
    assert refs({"schema": ds.CREATE_DEPLOYMENT}) == {"schema": ref("CreateDeployment")}
    # Validation keeps the dicts themselves, every enum inline.
    assert repr(ds.CREATE_DEPLOYMENT) == before
    assert ds.CREATE_DEPLOYMENT["properties"]["strategy"] is ds.STRATEGY
    with pytest.raises(ValidationError) as err:
        validate(ds.CREATE_DEPLOYMENT, {"name": "web", "source": "image", "strategy": "sideways"})
    assert err.value.details == {
        "field": "strategy",
        "reason": "must be one of start-first, stop-first",
    }


def test_one_name_per_schema():
    with pytest.raises(ValueError, match="Role and Kind are the same schema"):
        _Refs({"Role": schemas.ROLE, "Kind": schemas.ROLE})
