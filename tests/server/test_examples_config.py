"""ExamplesSync configuration: image names, categories, env defaults, trait documentation."""

from __future__ import annotations

import os
import sys

import pytest
from traitlets import TraitError

from jupyter_tk.server.examples.sync import ExamplesSync, ExamplesUnavailableError, repository_name

from .test_examples_engine import make_sync, write_tree


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("registry/library/tk-jupyter-ml-gpu:latest", "tk-jupyter-ml-gpu"),
        ("registry.thinkube.com:5000/library/tk-jupyter-ml-gpu:latest", "tk-jupyter-ml-gpu"),
        ("registry:5000/library/tk-jupyter-ml-gpu", "tk-jupyter-ml-gpu"),
        ("tk-jupyter-scipy", "tk-jupyter-scipy"),
        ("tk-jupyter-scipy:2024.1", "tk-jupyter-scipy"),
        ("quay.io/org/tk-jupyter-agent-dev@sha256:" + "a" * 64, "tk-jupyter-agent-dev"),
        ("localhost:5000/tk-jupyter-ml-cpu:v1@sha256:" + "b" * 64, "tk-jupyter-ml-cpu"),
        ("  docker.io/jupyter/scipy-notebook:latest \n", "scipy-notebook"),
        ("", ""),
    ],
)
def test_repository_name_of_an_image_reference(image, name):
    assert repository_name(image) == name


def test_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("JUPYTER_TK_EXAMPLES_SOURCE", "/srv/examples")
    monkeypatch.setenv("JUPYTER_TK_EXAMPLES_DEST", "/home/jovyan/ex")
    monkeypatch.setenv("JUPYTER_IMAGE", "registry:5000/library/tk-jupyter-ml-gpu:latest")
    sync = ExamplesSync()
    assert (sync.source_dir, sync.destination_dir, sync.image_name) == (
        "/srv/examples",
        "/home/jovyan/ex",
        "tk-jupyter-ml-gpu",
    )


def test_defaults_without_environment(monkeypatch):
    names = ["JUPYTER_TK_EXAMPLES_SOURCE", "JUPYTER_TK_EXAMPLES_DEST", "JUPYTER_IMAGE"]
    for name in [*names, "JUPYTER_IMAGE_SPEC"]:
        monkeypatch.delenv(name, raising=False)
    sync = ExamplesSync()
    # Neutral: the examples shipped with jupyter-tk, copied to ~/examples (sites set their own)
    assert sync.source_dir == os.path.join(sys.prefix, "share", "jupyter-tk", "examples")
    assert sync.destination_dir == "~/examples"
    assert sync.image_name == "local"
    assert sync.sync_on_start is True
    assert sync.exclude == [".git", ".ipynb_checkpoints", "__pycache__"]
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", "tk-jupyter-ml-cpu:latest")
    assert ExamplesSync().image_name == "tk-jupyter-ml-cpu"


@pytest.mark.parametrize(
    ("image", "folders", "configured", "expected"),
    [
        ("tk-jupyter-ml-gpu", ["common", "ml-gpu", "gpu", "ml-cpu"], {}, ["common", "ml-gpu"]),
        ("tk-jupyter-fine-tuning", ["common", "fine-tuning"], {}, ["common", "fine-tuning"]),
        ("tk-jupyter-agent-dev", ["common", "dev", "agent-dev"], {}, ["common", "agent-dev"]),
        ("tk-jupyter-scipy", ["common", "ml-gpu"], {}, ["common"]),
        ("tk-jupyter-ml-gpu", ["common"], {}, ["common"]),
        ("tk-jupyter-ml-gpu", ["common", "ml-gpu", "fine-tuning"],
         {"tk-jupyter-ml-gpu": ["common", "ml-gpu", "fine-tuning"]},
         ["common", "ml-gpu", "fine-tuning"]),
        ("tk-jupyter-scipy", ["common", "ml-cpu"], {"*": ["ml-cpu"]}, ["ml-cpu"]),
        ("tk-jupyter-ml-gpu", ["common", "ml-gpu"], {"*": ["common"]}, ["common"]),
    ],
)  # fmt: skip
def test_categories_for_an_image(tmp_path, image, folders, configured, expected):
    write_tree(tmp_path / "source", {f"{folder}/x.ipynb": b"x" for folder in folders})
    document = make_sync(tmp_path, image_name=image, categories=configured).list_examples()
    assert document["categories"] == expected
    assert {item["category"] for item in document["items"]} == set(expected)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image_name": "../etc"}, "cannot be a folder name"),
        ({"image_name": "a/b"}, "cannot be a folder name"),
        ({"image_name": ""}, "cannot be a folder name"),
        ({"categories": {"*": ["../outside"]}}, "is not a folder name"),
        ({"categories": {"*": [".git"]}}, "is not a folder name"),
    ],
)
def test_unusable_names_are_reported_not_used(tmp_path, settings, message):
    write_tree(tmp_path / "source", {"common/x.ipynb": b"x"})
    sync = make_sync(tmp_path, **settings)
    assert message in sync.list_examples()["error"]
    with pytest.raises(ExamplesUnavailableError, match=message):
        sync.copy_all()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    "settings",
    [{"max_file_bytes": -1}, {"max_total_bytes": -1}, {"min_free_bytes": -1}, {"copy_threads": 0}],
)
def test_negative_limits_are_rejected_at_configuration(tmp_path, settings):
    with pytest.raises(TraitError):
        make_sync(tmp_path, **settings)


def test_every_trait_is_configurable_and_documented_with_an_example():
    traits = ExamplesSync.class_own_traits()
    contract = {"source_dir", "destination_dir", "image_name", "categories", "sync_on_start"}
    limits = {"exclude", "max_file_bytes", "max_total_bytes", "min_free_bytes"}
    assert contract | limits <= set(traits)
    for name, trait in traits.items():
        assert trait.metadata.get("config") is True, name
        assert "Example" in trait.help, name
        assert "thinkube" not in trait.help.lower(), f"{name}: no site-specific layout in code"
