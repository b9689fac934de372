"""Run by test_clients_generated.py with the generators' Python, beside the client they made:
one real session through the generated client, printed as JSON for the test to check."""

from __future__ import annotations

import json
import sys
import time

from dployr_client import AuthenticatedClient, Client
from dployr_client.api.auth import post_api_v1_auth_login, post_api_v1_auth_register
from dployr_client.api.deployments import get_api_v1_deployments_id, post_api_v1_deployments
from dployr_client.api.services import get_api_v1_services
from dployr_client.models import (
    CreateDeployment,
    Deployment,
    DeploymentSource,
    DeploymentStatus,
    Error,
    Login,
    Register,
    Runtime,
    ServicePage,
    ServiceStatus,
    Stage,
    StageName,
    TokenPair,
    User,
)

FINISHED = {
    DeploymentStatus(s) for s in ("live", "failed", "cancelled", "superseded", "rolled_back")
}
url, remote, password = sys.argv[1:4]
anonymous = Client(base_url=url, raise_on_unexpected_status=True)
email = "client@example.com"
user = post_api_v1_auth_register.sync(
    client=anonymous, body=Register(name="Generated", email=email, password=password)
)
assert isinstance(user, User), user
pair = post_api_v1_auth_login.sync(client=anonymous, body=Login(email=email, password=password))
assert isinstance(pair, TokenPair), pair
wrong = post_api_v1_auth_login.sync(client=anonymous, body=Login(email=email, password="x" * 9))
assert isinstance(wrong, Error), wrong  # a 401 comes back typed too

client = AuthenticatedClient(base_url=url, token=pair.access_token, raise_on_unexpected_status=True)
deployment = post_api_v1_deployments.sync(
    client=client,
    body=CreateDeployment(
        name="web", source=DeploymentSource.REMOTE, remote=remote, runtime=Runtime.STATIC
    ),
)
assert isinstance(deployment, Deployment), deployment
assert isinstance(deployment.status, DeploymentStatus), deployment.status
# The remote refuses connections: the deployment fails at its first stage, with no container.
deadline = time.monotonic() + 60
while deployment.status not in FINISHED:
    assert time.monotonic() < deadline, deployment
    time.sleep(0.2)
    deployment = get_api_v1_deployments_id.sync(deployment.id, client=client)
    assert isinstance(deployment, Deployment), deployment
assert all(isinstance(stage, Stage) for stage in deployment.stages)
assert deployment.stages[0].name is StageName.FETCHING, deployment.stages
page = get_api_v1_services.sync(client=client)
assert isinstance(page, ServicePage), page
assert all(isinstance(service.status, ServiceStatus) for service in page.items)
print(
    json.dumps(
        {
            "user": {"email": user.email, "role": user.role.value},
            "token_type": pair.token_type,
            "wrong_password": wrong.error.code,
            "deployment": {
                "id": deployment.id,
                "status": deployment.status.value,
                "first_stage": deployment.stages[0].status.value,
            },
            "services": [
                {
                    "id": service.id,
                    "name": service.name,
                    "status": service.status.value,
                    "desired_state": service.desired_state.value,
                    "created_at": service.created_at.isoformat(),
                }
                for service in page.items
            ],
            "total": page.total,
        }
    )
)
