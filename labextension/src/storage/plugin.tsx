/**
 * Plugin `jupyter-tk:storage`: which folders last. The file browser shows the tier of the
 * folder it is in (toolbar) and of the folders of the layout (a badge by their names), and a
 * notebook saved where it will be lost with the server gets one warning, with a way to copy it
 * to the folder that is kept. Without tiers from the spawner (one machine) nothing is shown.
 */
import * as React from 'react';

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { ReactWidget } from '@jupyterlab/ui-components';

import { requestAPI } from '../request';
import type { ITranslate } from '../trans';
import {
  ephemeralWarning,
  folderOf,
  IStorageFolder,
  IStorageListing,
  keepFolder,
  tierText
} from './tiers';

/** Notebooks already warned about, kept across reloads (once per file). */
const WARNED_KEY = 'jupyter-tk:storage-warned';

/** The tier of the file browser's current folder, in its toolbar. */
class TierIndicator extends ReactWidget {
  constructor(
    private readonly _browser: IDefaultFileBrowser,
    private readonly _folders: IStorageFolder[],
    private readonly _trans: ITranslate
  ) {
    super();
    this.addClass('jp-tk-storage-indicator');
    _browser.model.pathChanged.connect(() => this.update(), this);
  }

  render(): JSX.Element | null {
    const folder = folderOf(this._browser.model.path, this._folders);
    if (folder === null) {
      return null;
    }
    const { label, title } = tierText(folder.tier, this._folders, this._trans);
    return (
      <span className="jp-tk-storage-tier" data-tier={folder.tier} title={title}>
        {label}
      </span>
    );
  }
}

/** Badges on the folders of the layout listed in the file browser. */
function decorateListing(
  browser: IDefaultFileBrowser,
  folders: IStorageFolder[],
  trans: ITranslate
): void {
  const byPath = new Map(folders.filter(f => f.path !== '').map(f => [f.path, f]));
  let scheduled = false;
  const decorate = () => {
    scheduled = false;
    const items = browser.node.querySelectorAll<HTMLElement>('.jp-DirListing-item');
    items.forEach(item => {
      const text = item.querySelector<HTMLElement>('.jp-DirListing-itemText');
      if (text === null) {
        return;
      }
      const name = text.textContent?.trim() ?? '';
      const isDir = item.getAttribute('data-isdir') === 'true';
      const folder = isDir
        ? byPath.get(PathExt.join(browser.model.path, name))
        : undefined;
      // Listing rows are reused for other entries: set or clear on every pass. The badge is
      // the name's ::after (style/storage.css), so the name's own text is left alone.
      if (folder === undefined) {
        text.removeAttribute('data-tk-tier');
        text.removeAttribute('data-tk-tier-label');
        text.removeAttribute('title');
        return;
      }
      const { label, title } = tierText(folder.tier, folders, trans);
      if (text.getAttribute('data-tk-tier-label') !== label) {
        text.setAttribute('data-tk-tier', folder.tier);
        text.setAttribute('data-tk-tier-label', label);
        text.setAttribute('title', `${label}: ${title}`);
      }
    });
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(decorate);
    }
  };
  // Attribute changes (ours) are not observed, so decorating never triggers itself.
  new MutationObserver(schedule).observe(browser.node, {
    childList: true,
    subtree: true,
    characterData: true
  });
  browser.model.pathChanged.connect(schedule);
  schedule();
}

function warnedPaths(): Set<string> {
  try {
    const stored = JSON.parse(window.localStorage.getItem(WARNED_KEY) ?? '[]');
    return new Set(Array.isArray(stored) ? stored : []);
  } catch {
    return new Set();
  }
}

function rememberWarned(path: string): void {
  const paths = warnedPaths();
  paths.add(path);
  try {
    window.localStorage.setItem(WARNED_KEY, JSON.stringify([...paths]));
  } catch {
    // Storage full or disabled: the warning may come again, which is harmless.
  }
}

/** Warn once per notebook saved in an ephemeral folder. */
function watchSaves(
  app: JupyterFrontEnd,
  labShell: ILabShell | null,
  docManager: IDocumentManager,
  folders: IStorageFolder[],
  trans: ITranslate
): void {
  const watched = new WeakSet<object>();
  const keep = keepFolder(folders);

  const warn = (path: string) => {
    const message = ephemeralWarning(path, folders, trans);
    if (message === null || !path.endsWith('.ipynb') || warnedPaths().has(path)) {
      return;
    }
    rememberWarned(path);
    const actions: Notification.IAction[] = [];
    if (keep !== null) {
      actions.push({
        label: trans.__('Copy to %1', keep),
        displayType: 'accent',
        callback: () => {
          app.serviceManager.contents
            .copy(path, keep)
            .then(model => {
              Notification.success(trans.__('Copied to %1', model.path), {
                autoClose: 5000
              });
            })
            .catch(error => {
              Notification.error(
                trans.__(
                  'Could not copy "%1": %2',
                  path,
                  String(error?.message ?? error)
                )
              );
            });
        }
      });
    }
    actions.push({ label: trans.__('Dismiss'), callback: () => undefined });
    Notification.warning(message, { autoClose: false, actions });
  };

  const watch = (widget: unknown) => {
    const context = widget ? docManager.contextForWidget(widget as never) : undefined;
    if (!context || watched.has(context)) {
      return;
    }
    watched.add(context);
    context.saveState.connect((ctx, state) => {
      if (state === 'completed') {
        warn(ctx.path);
      }
    });
  };

  for (const widget of app.shell.widgets('main')) {
    watch(widget);
  }
  labShell?.currentChanged.connect((_, change) => watch(change.newValue));
  labShell?.layoutModified.connect(() => {
    for (const widget of app.shell.widgets('main')) {
      watch(widget);
    }
  });
}

export const storagePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tk:storage',
  description:
    'Storage tiers: shows which folders are kept, shared, read only or lost with the server, and warns when a notebook is saved where it will be lost.',
  autoStart: true,
  optional: [IDefaultFileBrowser, IDocumentManager, ILabShell, ITranslator],
  activate: async (
    app: JupyterFrontEnd,
    browser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null,
    labShell: ILabShell | null,
    translator: ITranslator | null
  ): Promise<void> => {
    const trans = (translator ?? nullTranslator).load('jupyter_tk');
    let listing: IStorageListing;
    try {
      listing = await requestAPI<IStorageListing>('api/storage');
    } catch (error) {
      console.warn('jupyter-tk: storage tiers unavailable', error);
      return;
    }
    if (listing.error) {
      console.warn(`jupyter-tk: storage tiers not shown: ${listing.error}`);
    }
    const folders = listing.folders;
    if (folders.length === 0) {
      return; // one machine, no layout: nothing to say
    }
    if (browser) {
      browser.toolbar.addItem(
        'jupyter-tk-storage-tier',
        new TierIndicator(browser, folders, trans)
      );
      decorateListing(browser, folders, trans);
    }
    if (docManager) {
      watchSaves(app, labShell, docManager, folders, trans);
    }
  }
};
