/**
 * Plugin `jupyter-tk:examples`: the Examples sidebar panel (settings in
 * `schema/examples.json`).
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { examplesIcon } from '../icons';
import { ExamplesModel } from './model';
import { ExamplesPanel } from './panel';

/** Just below the GPU panel among the left-sidebar tabs. */
const SIDEBAR_RANK = 860;

export const CommandIds = {
  open: 'jupyter-tk:open-examples-panel'
};

export const examplesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tk:examples',
  description:
    'Examples panel: editable copies of the examples that fit this image, updated without losing edits.',
  autoStart: true,
  optional: [
    IDocumentManager,
    ILayoutRestorer,
    ISettingRegistry,
    ITranslator,
    ICommandPalette
  ],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('jupyter_tk');
    const model = new ExamplesModel();
    const panel = new ExamplesPanel({
      model,
      translator: translator ?? nullTranslator,
      open: path => {
        if (docManager) {
          docManager.openOrReveal(path);
        } else {
          void app.commands.execute('docmanager:open', { path });
        }
      }
    });
    // An open document whose file was just updated or reset shows the new content, unless
    // it has unsaved changes (then JupyterLab asks on the next save, and nothing is lost).
    model.replaced.connect((_, paths) => {
      for (const path of paths) {
        const widget = docManager?.findWidget(path);
        const context = widget && docManager?.contextForWidget(widget);
        if (context && !context.model.dirty) {
          void context.revert();
        }
      }
    });
    app.shell.add(panel, 'left', { rank: SIDEBAR_RANK, type: 'Examples' });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(CommandIds.open, {
      label: trans.__('Show Examples'),
      caption: trans.__('Open the Examples panel in the left sidebar'),
      icon: examplesIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIds.open, category: trans.__('Examples') });

    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings) => {
        const size = settings.get('copyBatchSize').composite;
        if (typeof size === 'number' && Number.isInteger(size) && size > 0) {
          model.batchSize = size;
        }
      };
      settingRegistry
        .load(examplesPlugin.id)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.error(
            'jupyter-tk: could not load Examples settings, using defaults.',
            reason
          );
        });
    }
  }
};
