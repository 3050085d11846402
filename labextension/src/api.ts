/**
 * Typed client of the jupyter-tk REST API under `jupyter-tk/api` (docs/contracts.md). The
 * types are generated from jupyter_tk/server/contract.py into ./contract.ts.
 */
import type {
  CopyRequest,
  IExamplesActionResult,
  IExamplesListing,
  IGpuHistory,
  IGpuSnapshot
} from './contract';
import { postAPI, requestAPI } from './request';

export type {
  CopyRequest,
  ExampleStatus,
  IExampleItem,
  IExampleResult,
  IExampleSkipped,
  IExamplesActionResult,
  IExamplesListing,
  IExamplesSyncState,
  IGpuDevice,
  IGpuDeviceHistory,
  IGpuHistory,
  IGpuProcess,
  IGpuSnapshot
} from './contract';

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
