import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { examplesPlugin } from './examples/plugin';
import { gpuPlugin } from './gpu/plugin';

const plugins: JupyterFrontEndPlugin<void>[] = [gpuPlugin, examplesPlugin];

export default plugins;
