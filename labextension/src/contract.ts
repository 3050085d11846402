/*
 * Generated from jupyter_tk/server/contract.py by `python -m tests.support.contract`: do not edit.
 * Change the Python contract and regenerate; tests/test_contracts.py checks both agree.
 */

/** A process using a GPU. */
export interface IGpuProcess {
  pid: number;
  /** Bytes; null when NVML cannot tell. */
  used_memory: number | null;
  /** Set when the process is one of this server's kernels. */
  kernel_id: string | null;
}

/**
 * How the processes of a device were matched to kernels (docs/gpu-attribution.md):
 * `pid` NVML's process ids are this server's; `device-file` they are not (host ids, as
 * older drivers report them in containers), so the kernels holding the GPU's device
 * file open are used; null they are not and no device file tells this device apart (a
 * MIG instance beside others).
 */
export type GpuAttribution = 'pid' | 'device-file' | null;

/** One of this server's kernels using a device. */
export interface IGpuKernelUse {
  kernel_id: string;
  /** Its processes here: the kernel and descendants using the GPU. */
  pids: number[];
  /** Bytes; null when NVML's processes cannot be told apart. */
  used_memory: number | null;
}

/**
 * One GPU, or one MIG instance of a MIG-enabled GPU (`mig` true, `parent_uuid` set).
 */
export interface IGpuDevice {
  index: number;
  uuid: string;
  name: string;
  mig: boolean;
  parent_uuid: string | null;
  /** Percent. */
  utilization_gpu: number | null;
  /** Percent. */
  utilization_memory: number | null;
  /** Bytes. */
  memory_used: number | null;
  /** Bytes. */
  memory_total: number | null;
  /** Degrees Celsius. */
  temperature: number | null;
  /** Watts. */
  power_usage: number | null;
  /** Watts. */
  power_limit: number | null;
  processes: IGpuProcess[];
  attribution: GpuAttribution;
  /** This server's kernels using this device. */
  kernels: IGpuKernelUse[];
  /** Set when this device failed (e.g. lost); the figures are null. */
  error: string | null;
}

/** `GET jupyter-tk/api/gpus`. */
export interface IGpuSnapshot {
  available: boolean;
  /** Why no GPU is available, for people. */
  reason: string | null;
  driver_version: string | null;
  cuda_driver_version: string | null;
  /** Seconds since the epoch when the sample was taken. */
  timestamp: number;
  /** Seconds between samples. */
  interval: number;
  devices: IGpuDevice[];
}

/** Samples of one device, oldest first; the three lists have the same length. */
export interface IGpuDeviceHistory {
  timestamps: number[];
  utilization_gpu: (number | null)[];
  memory_used: (number | null)[];
}

/** `GET jupyter-tk/api/gpus/history`: the last `seconds` of samples per device UUID. */
export interface IGpuHistory {
  /** Seconds between samples. */
  interval: number;
  /** Seconds of history kept. */
  seconds: number;
  devices: { [key: string]: IGpuDeviceHistory };
}

/**
 * Status of one example: `new` not copied yet; `unchanged` the copy equals the source;
 * `update-available` the source changed and the copy was not edited; `modified` the
 * user edited the copy; `conflict` both changed; `deleted` the user deleted the copy.
 */
export type ExampleStatus =
  'new' | 'unchanged' | 'update-available' | 'modified' | 'conflict' | 'deleted';

/** One example file and the state of the user's copy. */
export interface IExampleItem {
  /** category/relative/path, the only way the server accepts to name it. */
  id: string;
  category: string;
  /** Path of the user's copy, relative to the server root. */
  path: string;
  status: ExampleStatus;
  /** Bytes of the original. */
  size: number;
  /** Why it cannot be copied right now (e.g. over the size cap). */
  error: string | null;
}

/** A source file the server leaves out, and why. */
export interface IExampleSkipped {
  id: string;
  reason: string;
}

/** The start-up (or last) background sync. */
export interface IExamplesSyncState {
  running: boolean;
  error: string | null;
  /** Seconds since the epoch. */
  finished_at: number | null;
  copied: number;
  /** Files the running sync is copying. */
  total: number;
}

/** `GET jupyter-tk/api/examples`. */
export interface IExamplesListing {
  image: string;
  source: string;
  destination: string;
  categories: string[];
  items: IExampleItem[];
  source_exists: boolean;
  sync: IExamplesSyncState;
  /** Why the examples cannot be listed or copied; else null. */
  error: string | null;
  skipped: IExampleSkipped[];
}

/** Body of `POST jupyter-tk/api/examples/copy` that copies every example. */
export interface ICopyAllRequest {
  all: true;
}

/** Body of `POST jupyter-tk/api/examples/reset` (and of a copy of some examples). */
export interface IResetRequest {
  ids: string[];
}

/** Body of `POST jupyter-tk/api/examples/copy`. */
export type CopyRequest = IResetRequest | ICopyAllRequest;

/** What the server did with one example of a copy or reset request. */
export interface IExampleResult {
  id: string;
  /** Status after the request. */
  status: ExampleStatus;
  /** skipped: nothing to do, or not allowed (then message says why). */
  action: 'copied' | 'updated' | 'skipped' | 'error';
  message: string | null;
  /** Where the user's version was kept (reset), from the root. */
  backup: string | null;
}

/** Answer of `POST jupyter-tk/api/examples/copy` and `.../reset`: one result per id. */
export interface IExamplesActionResult {
  results: IExampleResult[];
}
