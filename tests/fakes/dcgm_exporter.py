"""A process serving NVIDIA dcgm-exporter's metrics, for a real Prometheus to scrape.

dcgm-exporter cannot run here (it needs DCGM and GPUs); this is it at the process boundary:
`GET /metrics` answers the Prometheus text format with dcgm-exporter's metric names and labels,
for the GPUs listed in a JSON file that is read again at every scrape (tests change it while
Prometheus scrapes).

    python -m tests.fakes.dcgm_exporter --port 9400 --devices devices.json

`devices_for_cluster(cluster)` lists the GPUs of a simulated cluster (tests/fakes/clusters.py):
whole GPUs and MIG instances per node, the ones its pods hold marked with their pod.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["devices_for_cluster", "render_metrics"]

GPU_PREFIX = "nvidia.com/"


def devices_for_cluster(cluster, *, utilization: float = 0.0) -> list[dict]:
    """One entry per NVIDIA GPU or MIG instance of the cluster's nodes."""
    held: dict[tuple[str, str], list[dict]] = {}
    for pod in cluster.pods:
        node = pod["spec"].get("nodeName")
        for container in pod["spec"].get("containers", []):
            resources = container.get("resources", {})
            amounts = {**resources.get("requests", {}), **resources.get("limits", {})}
            for resource, count in amounts.items():
                if resource.startswith(GPU_PREFIX):
                    for _ in range(int(count)):
                        held.setdefault((node, resource), []).append(pod["metadata"])
    devices = []
    for number, node in enumerate(cluster.nodes):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels", {})
        model = labels.get("nvidia.com/gpu.product", "NVIDIA GPU").replace("-", " ")
        memory_mib = int(labels.get("nvidia.com/gpu.memory", "16384"))
        for resource, count in sorted(node["status"]["allocatable"].items()):
            if not resource.startswith(GPU_PREFIX + "gpu") and not resource.startswith(
                GPU_PREFIX + "mig-"
            ):
                continue
            profile = resource[len(GPU_PREFIX + "mig-") :] if "mig-" in resource else None
            holders = held.get((name, resource), [])
            for index in range(int(count)):
                holder = holders[index] if index < len(holders) else None
                slice_mib = int(labels.get(f"nvidia.com/mig-{profile}.memory", memory_mib))
                total = slice_mib if profile else memory_mib
                used = total // 4 if holder else 0
                devices.append(
                    {
                        "hostname": name,
                        "gpu": index,
                        "uuid": f"GPU-{number:08x}-0000-4000-8000-{index:012x}",
                        "model": model,
                        "mig_profile": profile,
                        "mig_instance": index if profile else None,
                        "utilization": utilization if holder else 0.0,
                        "fb_used_mib": used,
                        "fb_free_mib": total - used,
                        "pod": holder["name"] if holder else None,
                        "namespace": holder.get("namespace") if holder else None,
                    }
                )
    return devices


def render_metrics(devices: list[dict]) -> str:
    """dcgm-exporter's text format for these devices."""
    lines = []
    for metric, kind, help_text, field in (
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "utilization"),
        ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "fb_used_mib"),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "fb_free_mib"),
    ):
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for device in devices:
            labels = {
                "gpu": str(device["gpu"]),
                "UUID": device["uuid"],
                "device": f"nvidia{device['gpu']}",
                "modelName": device["model"],
                "Hostname": device["hostname"],
                "DCGM_FI_DRIVER_VERSION": "550.54.15",
            }
            if device.get("mig_profile"):
                labels["GPU_I_PROFILE"] = device["mig_profile"]
                labels["GPU_I_ID"] = str(device["mig_instance"])
            if device.get("pod"):
                labels.update(
                    container="notebook", namespace=device["namespace"], pod=device["pod"]
                )
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{metric}{{{text}}} {device[field]}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=Path, required=True)
    args = parser.parse_args()

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = render_metrics(json.loads(args.devices.read_text())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Metrics).serve_forever()


if __name__ == "__main__":
    main()
