import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { examplesPlugin } from './examples/plugin';
import { gpuPlugin } from './gpu/plugin';
import { idlePlugin } from './idle/plugin';

const plugins: JupyterFrontEndPlugin<void>[] = [gpuPlugin, examplesPlugin, idlePlugin];

export default plugins;
