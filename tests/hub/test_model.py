"""Kubernetes quantities and the allocation rule of `kubectl describe node`."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_tk.hub.inventory.model import (
    from_storage,
    pod_is_active,
    pod_requests,
    pod_storage_requests,
    to_storage,
)
from jupyter_tk.hub.quantities import parse_quantity
from tests.fakes.clusters import container, make_pod

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", D("0.1")),
        ("1.5Gi", D(1536 * 1024**2)),
        ("2e3", D(2000)),
        ("512M", D(512 * 10**6)),
        ("1Ki", D(1024)),
        ("3500m", D("3.5")),
        ("2G", D(2 * 10**9)),
        ("0.5", D("0.5")),
        ("1E", D(10**18)),
        ("+1", D(1)),
        ("-1", D(-1)),
        ("1E3", D(1000)),
        ("1e-3", D("0.001")),
        ("1.", D(1)),
        (".5", D("0.5")),
        ("0", D(0)),
        ("16Gi", D(16 * 1024**3)),
        ("1Ti", D(1024**4)),
        ("2k", D(2000)),
        ("7Ei", D(7 * 1024**6)),
        ("250m", D("0.25")),
        (4, D(4)),
        (1.5, D("1.5")),
    ],
)
def test_parses_kubernetes_quantities(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "junk",
    [
        "",
        " ",
        " 1",
        "1 ",
        "1.2.3",
        "Gi",
        "1GB",
        "1gi",
        "1K",
        "abc",
        "1e",
        "e3",
        "1e3.5",
        "0x10",
        "1_000",
        "--1",
        "+-1",
        "1Ki1",
        ".",
        "NaN",
        "nan",
        "inf",
        "Infinity",
        "\u0661",  # ARABIC-INDIC DIGIT ONE
        "\uff11",  # FULLWIDTH DIGIT ONE
        "1\u00a0Gi",
        "\u00bd",
        "1e999",
        "1e31",
        "8Ei",
        "99999999999999999999",
        "1" * 70,
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        None,
        [],
        {"cpu": 1},
        2**70,
    ],
)
def test_rejects_what_kubernetes_rejects(junk):
    with pytest.raises(ValueError):
        parse_quantity(junk)


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_value_error(text):
    try:
        result = parse_quantity(text)
    except ValueError:
        return
    assert result.is_finite()
    assert abs(result) <= 2**63


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_integers_round_trip(number):
    assert parse_quantity(str(number)) == number


@pytest.mark.parametrize(
    ("resource", "text", "stored", "shown"),
    [
        ("cpu", "100m", 100, 0.1),
        ("cpu", "1.5", 1500, 1.5),
        ("cpu", "1e-6", 1, 0.001),  # rounded up to a millicore, like MilliValue()
        ("memory", "1.5Gi", 1610612736, 1610612736),
        ("memory", "100m", 1, 1),  # rounded up to a byte, like Value()
        ("nvidia.com/gpu", "2", 2, 2),
    ],
)
def test_storage_units(resource, text, stored, shown):
    assert to_storage(resource, parse_quantity(text)) == stored
    assert from_storage(resource, stored) == shown


# -- allocation --------------------------------------------------------------------------------


def _pod(containers, init=None, overhead=None, **spec_extra):
    pod = make_pod("p", node="n", containers=containers, init_containers=init, overhead=overhead)
    pod["spec"].update(spec_extra)
    return pod


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(
            _pod([container("a", {"cpu": "500m", "memory": "1Gi"})]),
            {"cpu": D("0.5"), "memory": D(1024**3)},
            id="one container",
        ),
        pytest.param(
            _pod([container("a", {"cpu": "500m"}), container("b", {"cpu": "1500m"})]),
            {"cpu": D(2)},
            id="containers add up",
        ),
        pytest.param(
            _pod([container("a", {"cpu": "1"}, {"nvidia.com/gpu": "1"})]),
            {"cpu": D(1), "nvidia.com/gpu": D(1)},
            id="limit-only extended resource counts as its request",
        ),
        pytest.param(
            _pod([container("a", None, {"cpu": "2", "memory": "4Gi"})]),
            {"cpu": D(2), "memory": D(4 * 1024**3)},
            id="limits without requests count as requests",
        ),
        pytest.param(
            _pod([container("a", {"cpu": "1"}, {"cpu": "4"})]),
            {"cpu": D(1)},
            id="an explicit request wins over the limit",
        ),
        pytest.param(
            _pod([container("a", {"cpu": "1"})], init=[container("i", {"cpu": "3"})]),
            {"cpu": D(3)},
            id="larger init container wins",
        ),
        pytest.param(
            _pod([container("a", {"cpu": "2"})], init=[container("i", {"cpu": "1"})]),
            {"cpu": D(2)},
            id="smaller init container does not add",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1"})],
                init=[container("i1", {"cpu": "2"}), container("i2", {"cpu": "1500m"})],
            ),
            {"cpu": D(2)},
            id="init containers run one at a time: max, not sum",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1", "memory": "4Gi"})],
                init=[container("i", {"cpu": "2", "memory": "1Gi"})],
            ),
            {"cpu": D(2), "memory": D(4 * 1024**3)},
            id="max is taken per resource",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1"})],
                init=[container("proxy", {"cpu": "500m"}, restart_policy="Always")],
            ),
            {"cpu": D("1.5")},
            id="sidecar adds to the containers",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1"})],
                init=[
                    container("proxy", {"cpu": "500m"}, restart_policy="Always"),
                    container("migrate", {"cpu": "2"}),
                ],
            ),
            {"cpu": D("2.5")},
            id="init after a sidecar runs next to it",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1"})],
                init=[
                    container("migrate", {"cpu": "2"}),
                    container("proxy", {"cpu": "500m"}, restart_policy="Always"),
                ],
            ),
            {"cpu": D(2)},
            id="init before a sidecar does not see it",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1", "memory": "1Gi"})],
                overhead={"cpu": "250m", "memory": "120Mi"},
            ),
            {"cpu": D("1.25"), "memory": D(1024**3 + 120 * 1024**2)},
            id="overhead is added",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1"})],
                init=[container("i", {"cpu": "3"})],
                overhead={"cpu": "100m"},
            ),
            {"cpu": D("3.1")},
            id="overhead is added after the init max",
        ),
        pytest.param(
            _pod(
                [container("a", {"cpu": "1", "nvidia.com/gpu": "1"})],
                resources={"requests": {"cpu": "4", "memory": "8Gi"}},
            ),
            {"cpu": D(4), "memory": D(8 * 1024**3), "nvidia.com/gpu": D(1)},
            id="pod-level requests replace the container sum for cpu and memory",
        ),
        pytest.param(_pod([container("a")]), {}, id="no resources at all"),
    ],
)
def test_pod_requests_follow_kubectl_describe_node(pod, expected):
    assert pod_requests(pod) == expected


def test_storage_requests_drop_zero_amounts():
    pod = _pod([container("a", {"cpu": "250m", "memory": "0"})])
    assert pod_storage_requests(pod) == {"cpu": 250}


def test_malformed_quantity_in_a_pod_is_a_value_error():
    pod = _pod([container("a", {"cpu": "lots"})])
    with pytest.raises(ValueError, match="lots"):
        pod_requests(pod)


@pytest.mark.parametrize(
    ("phase", "node", "active"),
    [
        ("Running", "n", True),
        ("Pending", "n", True),
        ("Unknown", "n", True),
        ("Succeeded", "n", False),
        ("Failed", "n", False),
        ("Pending", None, False),
    ],
)
def test_only_bound_unfinished_pods_hold_resources(phase, node, active):
    pod = make_pod("p", node=node, requests={"cpu": "1"}, phase=phase)
    assert pod_is_active(pod) is active
