"""Which GPUs a process may use: ``CUDA_VISIBLE_DEVICES`` read the way CUDA reads it.

CUDA's rules, kept here so a server reports only the devices its kernels can use:

- unset: every device; empty (or blank): none;
- a comma-separated list of NVML indices (``0,2``), GPU UUIDs (``GPU-8f2c...``) and MIG UUIDs
  (``MIG-4a1b...``); a UUID may be shortened to any prefix that names one device;
- the list stops at the first entry that names no device (``NoDevFiles``, ``-1``, an index out of
  range, an unknown or ambiguous UUID): only the entries before it count;
- a GPU with MIG enabled, named by index or UUID, stands for all its MIG instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class MigInstance:
    """One MIG instance of a GPU, as enumerated from NVML."""

    uuid: str
    name: str
    slot: int
    handle: object = None


@dataclass
class PhysicalGpu:
    """One GPU as enumerated from NVML; ``mig`` lists its instances when MIG is enabled."""

    index: int
    uuid: str
    name: str
    handle: object = None
    mig: list[MigInstance] | None = None
    error: str | None = None
    # The MIG instances this server may see (all of them unless CUDA_VISIBLE_DEVICES names some).
    visible_mig: list[MigInstance] = field(default_factory=list)


def parse_visible_devices(spec: str | None) -> list[str] | None:
    """Split a ``CUDA_VISIBLE_DEVICES`` value into entries; ``None`` means no restriction."""
    if spec is None:
        return None
    return [entry.strip() for entry in spec.split(",") if entry.strip()]


def _match_uuid(entry: str, candidates: Sequence[str]) -> str | None:
    """The one candidate ``entry`` names, in full or as a unique prefix (case-insensitive)."""
    wanted = entry.lower()
    exact = [uuid for uuid in candidates if uuid.lower() == wanted]
    if exact:
        return exact[0]
    prefixed = [uuid for uuid in candidates if uuid.lower().startswith(wanted)]
    return prefixed[0] if len(prefixed) == 1 else None


def select_visible(gpus: Sequence[PhysicalGpu], spec: str | None) -> list[PhysicalGpu]:
    """The GPUs a process with ``CUDA_VISIBLE_DEVICES=spec`` would see, in the order it names them.

    For MIG-enabled GPUs, ``visible_mig`` of each returned GPU is set to the instances selected.
    """
    entries = parse_visible_devices(spec)
    if entries is None:
        for gpu in gpus:
            gpu.visible_mig = list(gpu.mig or [])
        return list(gpus)

    by_index = {gpu.index: gpu for gpu in gpus}
    by_uuid = {gpu.uuid: gpu for gpu in gpus}
    mig_owner = {instance.uuid: (gpu, instance) for gpu in gpus for instance in gpu.mig or []}
    chosen: dict[int, PhysicalGpu] = {}
    chosen_mig: dict[int, list[MigInstance]] = {}

    def choose_whole(gpu: PhysicalGpu) -> None:
        chosen.setdefault(gpu.index, gpu)
        chosen_mig[gpu.index] = list(gpu.mig or [])

    for entry in entries:
        if entry.isdigit():
            gpu = by_index.get(int(entry))
            if gpu is None:
                break
            choose_whole(gpu)
        elif entry.upper().startswith("MIG-"):
            uuid = _match_uuid(entry, list(mig_owner))
            if uuid is None:
                break
            gpu, instance = mig_owner[uuid]
            chosen.setdefault(gpu.index, gpu)
            selected = chosen_mig.setdefault(gpu.index, [])
            if instance not in selected:
                selected.append(instance)
        elif entry.upper().startswith("GPU-"):
            uuid = _match_uuid(entry, list(by_uuid))
            if uuid is None:
                break
            choose_whole(by_uuid[uuid])
        else:
            break

    for index, gpu in chosen.items():
        gpu.visible_mig = chosen_mig.get(index, [])
    return list(chosen.values())


def describe_visibility(spec: str | None) -> str:
    """A phrase for messages: what restricts the devices this server sees."""
    if spec is None:
        return "all GPUs of this machine"
    return f"CUDA_VISIBLE_DEVICES={spec!r}"
