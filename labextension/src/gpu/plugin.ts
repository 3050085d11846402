/**
 * Plugin `jupyter-tk:gpu`: the GPUs sidebar panel and status-bar item, sharing one
 * `GpuModel` (one poll) and the settings in `schema/gpu.json`.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { gpuIcon } from '../icons';
import { GpuModel } from './model';
import { GpuPanel } from './panel';
import { GpuStatusItem } from './statusbar';

/** Place of the panel among the left-sidebar tabs (file browser 100 … extensions 1000). */
const SIDEBAR_RANK = 850;

/** Place of the item among the left-aligned status-bar items. */
const STATUSBAR_RANK = 3;

export const CommandIds = {
  open: 'jupyter-tk:open-gpu-panel'
};

export const gpuPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tk:gpu',
  description:
    'GPU stats from NVML: a sidebar panel with one card per GPU and a status-bar item.',
  autoStart: true,
  optional: [
    ILayoutRestorer,
    ISettingRegistry,
    IStatusBar,
    ITranslator,
    ICommandPalette
  ],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('jupyter_tk');
    const model = new GpuModel();
    const panel = new GpuPanel({
      model,
      sessions: app.serviceManager.sessions,
      translator: translator ?? nullTranslator
    });
    app.shell.add(panel, 'left', { rank: SIDEBAR_RANK, type: 'GPUs' });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CommandIds.open, {
      label: trans.__('Show GPUs'),
      caption: trans.__('Open the GPU panel in the left sidebar'),
      icon: gpuIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIds.open, category: trans.__('GPU') });

    let statusItem: GpuStatusItem | null = null;
    if (statusBar) {
      statusItem = new GpuStatusItem({
        model,
        translator: translator ?? nullTranslator,
        onClick: () => void app.commands.execute(CommandIds.open)
      });
      statusBar.registerStatusItem('jupyter-tk:gpu-status', {
        item: statusItem,
        align: 'left',
        rank: STATUSBAR_RANK,
        isActive: () => statusItem!.isActive(),
        activeStateChanged: statusItem.activeStateChanged
      });
    }

    const apply = (settings: ISettingRegistry.ISettings | null) => {
      const interval = settings?.get('refreshInterval').composite;
      const showStatusBar = settings?.get('showStatusBar').composite;
      model.interval = typeof interval === 'number' ? interval : 2;
      if (statusItem) {
        statusItem.enabled = showStatusBar !== false;
      }
    };

    if (settingRegistry) {
      Promise.all([settingRegistry.load(gpuPlugin.id), app.restored])
        .then(([settings]) => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(
            'jupyter-tk: could not load GPU settings, using defaults.',
            reason
          );
          apply(null);
        });
    } else {
      apply(null);
    }
  }
};
