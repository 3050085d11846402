import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { examplesPlugin } from './examples/plugin';
import { gpuPlugin } from './gpu/plugin';
import { idlePlugin } from './idle/plugin';
import { storagePlugin } from './storage/plugin';

const plugins: JupyterFrontEndPlugin<void>[] = [
  gpuPlugin,
  examplesPlugin,
  idlePlugin,
  storagePlugin
];

export default plugins;
