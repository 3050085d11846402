/**
 * Typed client of the jupyter-tk REST API (contract: ARCHITECTURE.md, "Singleuser REST API").
 * Field names mirror the server's JSON exactly.
 */
import { postAPI, requestAPI } from './request';

/** A process using a GPU. `kernel_id` is set when the pid is one of this server's kernels. */
export interface IGpuProcess {
  pid: number;
  /** Bytes, `null` when NVML cannot tell. */
  used_memory: number | null;
  kernel_id: string | null;
}

/** One GPU, or one MIG instance of a MIG-enabled GPU (`mig: true`, `parent_uuid` set). */
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
  /** Set when this device failed (e.g. lost); the other fields are then `null`. */
  error: string | null;
}

/** `GET jupyter-tk/api/gpus` */
export interface IGpuSnapshot {
  available: boolean;
  /** Why no GPU is available, for people. */
  reason: string | null;
  driver_version: string | null;
  cuda_driver_version: string | null;
  /** Seconds since the epoch when the sample was taken. */
  timestamp: number;
  devices: IGpuDevice[];
}

/** Samples of one device, oldest first; the three arrays have the same length. */
export interface IGpuDeviceHistory {
  timestamps: number[];
  utilization_gpu: (number | null)[];
  memory_used: (number | null)[];
}

/** `GET jupyter-tk/api/gpus/history` (the last ~10 minutes). */
export interface IGpuHistory {
  /** Seconds between samples. */
  interval: number;
  devices: { [uuid: string]: IGpuDeviceHistory };
}

/** Status of one example file (see ARCHITECTURE.md). */
export type ExampleStatus =
  'new' | 'unchanged' | 'update-available' | 'modified' | 'conflict' | 'deleted';

export interface IExampleItem {
  /** `category/relative/path`, the only way the server accepts to name an example. */
  id: string;
  category: string;
  /** Path of the user's copy, relative to the server root. */
  path: string;
  status: ExampleStatus;
  /** Bytes of the original. */
  size?: number;
  /** Why this example cannot be copied right now (e.g. over the size cap). */
  error?: string | null;
}

/** A source file the server leaves out, and why. */
export interface IExampleSkipped {
  id: string;
  reason: string;
}

/** State of the start-up (or last) background sync. */
export interface IExamplesSyncState {
  running: boolean;
  error: string | null;
  /** Seconds since the epoch. */
  finished_at: number | null;
  copied: number;
  /** Files the running sync is copying. */
  total?: number;
}

/** `GET jupyter-tk/api/examples` */
export interface IExamplesListing {
  image: string;
  source: string;
  destination: string;
  categories: string[];
  items: IExampleItem[];
  source_exists: boolean;
  sync: IExamplesSyncState;
  /** Why the examples cannot be listed or copied (e.g. the source folder is missing). */
  error?: string | null;
  skipped?: IExampleSkipped[];
}

/** Body of `POST jupyter-tk/api/examples/copy`. */
export type CopyRequest = { ids: string[] } | { all: true };

/** What the server did with one example of a copy or reset request. */
export interface IExampleResult {
  id: string;
  /** Status after the request. */
  status: ExampleStatus;
  /** `skipped`: nothing to do, or not allowed (then `message` says why). */
  action: 'copied' | 'updated' | 'skipped' | 'error';
  message: string | null;
  /** Where the user's version was kept (reset), relative to the server root. */
  backup: string | null;
}

/** Answer of `POST jupyter-tk/api/examples/copy` and `.../reset`: one result per id. */
export interface IExamplesActionResult {
  results: IExampleResult[];
}

export function fetchGpus(): Promise<IGpuSnapshot> {
  return requestAPI<IGpuSnapshot>('api/gpus');
}

export function fetchGpuHistory(): Promise<IGpuHistory> {
  return requestAPI<IGpuHistory>('api/gpus/history');
}

export function fetchExamples(): Promise<IExamplesListing> {
  return requestAPI<IExamplesListing>('api/examples');
}

export function copyExamples(body: CopyRequest): Promise<IExamplesActionResult> {
  return postAPI<IExamplesActionResult>('api/examples/copy', body);
}

export function resetExamples(ids: string[]): Promise<IExamplesActionResult> {
  return postAPI<IExamplesActionResult>('api/examples/reset', { ids });
}
