"""A service's volumes on the docker target (SPEC §14): named volumes with the agent's labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dployr.runtime.protocol import Mount, RuntimeFailure

if TYPE_CHECKING:
    import docker

LABEL_VOLUME = "dployr.volume"


def volume_name(mount: Mount) -> str:
    """Named after the service that first made it: a kept volume reattaches without renames."""
    return f"dployr-{mount.origin}-{mount.name}"


def ensure_volume(client: docker.DockerClient, labels: dict[str, str], mount: Mount) -> str:
    """The named volume, made with `labels` (plus its own) on first use. Creating a volume that
    exists returns it: two starts racing both get it."""
    name = volume_name(mount)
    client.volumes.create(
        name,
        driver="local",
        labels={**labels, "dployr.service": mount.origin, LABEL_VOLUME: mount.name},
    )
    return name


def size_in(usage: Any, mount: Mount) -> int | None:
    """The volume's bytes in GET /system/df's answer; None when it is not there (not made yet)
    or the engine could not measure it (it says -1)."""
    for volume in (usage or {}).get("Volumes") or ():
        if volume.get("Name") == volume_name(mount):
            size = (volume.get("UsageData") or {}).get("Size")
            return int(size) if isinstance(size, int) and size >= 0 else None
    return None


def remove_volume(client: docker.DockerClient, mount: Mount) -> None:
    """Remove it with its data; a missing one is fine, one a container uses is refused."""
    from docker.errors import APIError, NotFound  # loaded: this runs in DockerTarget._call

    name = volume_name(mount)
    try:
        client.volumes.get(name).remove()
    except NotFound:
        pass
    except APIError as err:
        if err.status_code == 409:
            raise RuntimeFailure(
                f"volume {name} is still in use by a container ({err.explanation})"
            ) from err
        raise
