"""Storage tiers in the pods TkKubeSpawner builds, for both shipped presets.

Pods come from KubeSpawner's real ``get_pod_manifest()`` (against the simulated API) and are
validated against the Kubernetes OpenAPI schema, so what is checked here is what a cluster
would be sent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_tk.hub.kubernetes.storage import (
    INIT_CONTAINER_NAME,
    INIT_MOUNT_ROOT,
    STORAGE_ENV,
    USER_DIR_ENV,
    StorageLayout,
    safe_user_dir,
)
from tests.deploy.conftest import assert_valid_kubernetes, pod_manifest

OPTIONS = {"profile": "cpu-basic", "image": "tk-jupyter-scipy"}
HOME = "/home/jovyan"


def notebook(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


def env(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def mounts(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container.get("volumeMounts") or []}


def volumes(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["spec"].get("volumes") or []}


def init_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["initContainers"] if c["name"] == INIT_CONTAINER_NAME)


@pytest.mark.parametrize("preset", ["thinkube", "university"])
async def test_preset_pods_validate_against_the_kubernetes_schema(make_spawner, preset):
    spawner = make_spawner(preset)
    pod = await pod_manifest(spawner, OPTIONS)
    assert_valid_kubernetes(pod)
    # The spawner creates no PVC of its own: the claims are shared ones an admin applies
    # (share/kubernetes/storage/*.yaml, validated in test_manifests.py).
    assert spawner.storage_pvc_ensure is False


async def test_thinkube_folders_tiers_and_the_users_own_notebooks(make_spawner):
    pod = await pod_manifest(make_spawner("thinkube"), OPTIONS)
    container = notebook(pod)
    by_path = mounts(container)
    # Home is not a volume: what pip installs with --user in the image stays visible.
    assert HOME not in by_path
    notebooks = by_path[f"{HOME}/thinkube/notebooks"]
    assert notebooks["subPathExpr"] == f"$({USER_DIR_ENV})"
    assert env(container)[USER_DIR_ENV] == "alice"
    claims = {
        path: volumes(pod)[m["name"]].get("persistentVolumeClaim", {}).get("claimName")
        for path, m in by_path.items()
        if m["name"].startswith("tk-")
    }
    assert claims == {
        f"{HOME}/thinkube/notebooks": "thinkube-notebooks",
        f"{HOME}/thinkube/datasets": "thinkube-datasets",
        f"{HOME}/thinkube/models": "thinkube-models",
        f"{HOME}/thinkube/examples-repo": "thinkube-examples",
        f"{HOME}/scratch": None,
    }
    assert by_path[f"{HOME}/thinkube/examples-repo"]["readOnly"] is True
    assert not by_path[f"{HOME}/thinkube/datasets"].get("readOnly")
    scratch = volumes(pod)[by_path[f"{HOME}/scratch"]["name"]]
    assert scratch["emptyDir"] == {"sizeLimit": "20Gi"}

    assert json.loads(env(container)[STORAGE_ENV]) == {
        HOME: "ephemeral",
        f"{HOME}/thinkube/notebooks": "persistent",
        f"{HOME}/thinkube/datasets": "shared",
        f"{HOME}/thinkube/models": "shared",
        f"{HOME}/thinkube/examples-repo": "read-only",
        f"{HOME}/scratch": "ephemeral",
    }

    # The user's folder is made before the server starts, as the user, seeing only that claim.
    init = init_container(pod)
    assert init["image"] == notebook(pod)["image"]
    assert init["securityContext"]["runAsUser"] == 1000
    assert init["securityContext"]["runAsNonRoot"] is True
    assert [m["name"] for m in init["volumeMounts"]] == [notebooks["name"]]
    assert f"mkdir -p -- /tk-storage/{notebooks['name']}/alice" in init["command"][2]


async def test_university_home_is_ephemeral_and_save_links_to_persist(make_spawner):
    extra = Config()
    extra.KubeSpawner.uid = 1234
    extra.KubeSpawner.gid = 567
    pod = await pod_manifest(make_spawner("university", "bob", extra), OPTIONS)
    container = notebook(pod)
    by_path = mounts(container)
    home = volumes(pod)[by_path[HOME]["name"]]
    assert home["emptyDir"] == {"sizeLimit": "20Gi"}
    persist = by_path[f"{HOME}/Persist"]
    assert persist["subPathExpr"] == f"$({USER_DIR_ENV})"
    assert volumes(pod)[persist["name"]]["persistentVolumeClaim"]["claimName"] == "jupyter-persist"
    assert "subPath" not in by_path[f"{HOME}/Shared"]
    # Home is mounted before the folders inside it.
    order = [m["mountPath"] for m in container["volumeMounts"] if m["name"].startswith("tk-")]
    assert order[0] == HOME

    init = init_container(pod)
    assert (init["securityContext"]["runAsUser"], init["securityContext"]["runAsGroup"]) == (
        1234,
        567,
    )
    script = init["command"][2]
    assert f"mkdir -p -- /tk-storage/{persist['name']}/bob" in script
    assert f"ln -sfn -- Persist /tk-storage/{by_path[HOME]['name']}/Save" in script
    assert sorted(m["name"] for m in init["volumeMounts"]) == sorted(
        [persist["name"], by_path[HOME]["name"]]
    )
    assert json.loads(env(container)[STORAGE_ENV])[HOME] == "ephemeral"


@pytest.mark.parametrize("username", ["../x", "..", "a/../../b", "Zoë ünïcødé", "x\ny; rm -rf ~"])
async def test_a_user_name_never_leaves_its_folder(make_spawner, username):
    pod = await pod_manifest(make_spawner("university", username), OPTIONS)
    assert_valid_kubernetes(pod)
    user_dir = env(notebook(pod))[USER_DIR_ENV]
    assert user_dir == safe_user_dir(user_dir)
    assert "/" not in user_dir and ".." not in user_dir and user_dir.isascii()
    script = init_container(pod)["command"][2]
    mkdirs = [line for line in script.splitlines() if line.startswith("mkdir -p -- /tk-storage/")]
    assert len(mkdirs) == 1 and mkdirs[0].endswith(f"/{user_dir}")


def run_init_container(pod: dict, mounts: Path) -> None:
    """Run the init container's script with real sh, its volumes as folders under ``mounts``."""
    init = init_container(pod)
    for mount in init["volumeMounts"]:
        (mounts / mount["name"]).mkdir(parents=True)
    script = init["command"][2].replace(INIT_MOUNT_ROOT, str(mounts))
    env = {"PATH": os.environ["PATH"], "HOME": str(mounts.parent)}
    subprocess.run([*init["command"][:2], script], check=True, timeout=30, env=env)


@pytest.mark.parametrize("username", ["bob", "../x", "..", "Zoë ünïcødé", "x\ny; touch ~/owned"])
async def test_the_init_script_makes_only_the_users_folder_and_the_link(
    make_spawner, username, tmp_path
):
    pod = await pod_manifest(make_spawner("university", username), OPTIONS)
    by_path = mounts(notebook(pod))
    persist, home = by_path[f"{HOME}/Persist"]["name"], by_path[HOME]["name"]
    area = tmp_path / "init"
    run_init_container(pod, area / "mounts")
    user_dir = env(notebook(pod))[USER_DIR_ENV]
    assert [p.name for p in (area / "mounts" / persist).iterdir()] == [user_dir]
    assert (area / "mounts" / persist / user_dir).is_dir()
    assert os.readlink(area / "mounts" / home / "Save") == "Persist"
    assert sorted(p.name for p in area.iterdir()) == ["mounts"]  # nothing written elsewhere
    assert sorted(p.name for p in (area / "mounts").iterdir()) == sorted([persist, home])


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "", "Alice", "-x", "x-"])
def test_unsafe_user_folder_names_are_refused(name):
    with pytest.raises(ValueError, match="cannot be a user's folder name"):
        safe_user_dir(name)


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ({"path": "/data", "tier": "shared", "claim": "data"}, "not absolute"),
        ({"path": "../data", "tier": "shared", "claim": "data"}, "not a plain folder name"),
        ({"path": "data", "tier": "shared"}, "need a 'claim'"),
        ({"path": "data", "tier": "ephemeral", "claim": "data"}, "emptyDir"),
        ({"path": "data", "tier": "archive", "claim": "data"}, "tier must be one of"),
        ({"path": "data", "tier": "shared", "claim": "Data_1"}, "not a PVC name"),
        ({"path": "tmp", "tier": "ephemeral", "size_limit": "lots"}, "quantity"),
        ({"path": "p", "tier": "persistent", "claim": "c", "sub_path": "../up"}, "plain folder"),
        ({"path": "p", "tier": "persistent", "claim": "c", "per_user": "yes"}, "true or false"),
        ({"path": "p", "tier": "shared", "claim": "c", "mode": "rw"}, "unknown keys"),
    ],
)
def test_bad_folders_are_refused_with_the_reason(folder, message):
    with pytest.raises(TraitError, match=message):
        StorageLayout(folders=[folder])


def test_links_need_home_to_be_a_volume():
    layout = StorageLayout(
        folders=[{"path": "Persist", "tier": "persistent", "claim": "c", "per_user": True}],
        links={"Save": "Persist"},
    )
    with pytest.raises(ValueError, match="needs the home folder"):
        layout.pod_storage(user_dir="alice", image="img", uid=None, gid=None)


async def test_no_layout_means_no_volumes_and_no_tiers(make_spawner):
    pod = await pod_manifest(make_spawner(None), OPTIONS)
    assert_valid_kubernetes(pod)
    assert not [v for v in pod["spec"].get("volumes") or [] if v["name"].startswith("tk-")]
    assert STORAGE_ENV not in env(notebook(pod))
    assert not pod["spec"].get("initContainers")
