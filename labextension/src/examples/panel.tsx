/**
 * The "Examples" sidebar panel: the examples that fit this image as a tree with a status
 * per file, copy / update / reset / open actions, "Copy all new" with progress, and
 * clear messages when the source folder is missing or the start-up sync failed.
 */
import * as React from 'react';

import { Dialog, showDialog } from '@jupyterlab/apputils';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { ReactWidget, refreshIcon } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';

import type { IExampleItem } from '../api';
import { examplesIcon } from '../icons';
import { ExamplesTree, Legend, ProgressBar } from './components';
import { ExamplesModel } from './model';
import { buildExampleTree, copiesFolder, ExampleAction, idsWithStatus } from './tree';

export const EXAMPLES_PANEL_ID = 'jp-tk-examples-panel';

export class ExamplesPanel extends ReactWidget {
  constructor(options: ExamplesPanel.IOptions) {
    super();
    this._model = options.model;
    this._open = options.open;
    this._trans = (options.translator ?? nullTranslator).load('jupyter_tk');
    this.id = EXAMPLES_PANEL_ID;
    this.addClass('jp-tk-panel');
    this.addClass('jp-tk-examples-panel');
    this.title.icon = examplesIcon;
    this.title.caption = this._trans.__('Examples');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Statuses change when the user edits or deletes files: re-read on every show.
    void this._model.refresh();
  }

  render(): JSX.Element {
    return (
      <ExamplesView
        model={this._model}
        open={this._open}
        confirmReset={item => this._confirmReset(item)}
        trans={this._trans}
      />
    );
  }

  private async _confirmReset(item: IExampleItem): Promise<boolean> {
    const trans = this._trans;
    const name = item.path.split('/').pop() ?? item.path;
    const dot = name.lastIndexOf('.');
    const kept =
      dot > 0
        ? `${name.slice(0, dot)}.mine-YYYYmmdd-HHMMSS${name.slice(dot)}`
        : `${name}.mine-YYYYmmdd-HHMMSS`;
    const result = await showDialog({
      title: trans.__('Reset %1 to the original?', name),
      body: trans.__(
        'Your copy is replaced by the original example. Your version is kept beside it as %1 (with the current date and time), so nothing is lost.',
        kept
      ),
      buttons: [
        Dialog.cancelButton({ label: trans.__('Cancel') }),
        Dialog.warnButton({ label: trans.__('Reset to original') })
      ]
    });
    return result.button.accept;
  }

  private _model: ExamplesModel;
  private _open: (path: string) => void;
  private _trans: TranslationBundle;
}

export namespace ExamplesPanel {
  export interface IOptions {
    model: ExamplesModel;
    /** Opens a file by its path relative to the server root. */
    open: (path: string) => void;
    translator?: ITranslator;
  }
}

interface IExamplesViewProps {
  model: ExamplesModel;
  open: (path: string) => void;
  confirmReset: (item: IExampleItem) => Promise<boolean>;
  trans: TranslationBundle;
}

function useModelChanges(model: ExamplesModel): void {
  const [, setVersion] = React.useState(0);
  React.useEffect(() => {
    const onChange = () => setVersion(v => v + 1);
    model.changed.connect(onChange);
    return () => {
      model.changed.disconnect(onChange);
    };
  }, [model]);
}

function ExamplesView(props: IExamplesViewProps): JSX.Element {
  const { model, open, confirmReset, trans } = props;
  useModelChanges(model);
  // Folders the user opened; categories start open, set on first listing.
  const [expanded, setExpanded] = React.useState<Set<string> | null>(null);
  const { listing, error, progress, failures, backups, loading } = model;

  const roots = React.useMemo(
    () => (listing ? buildExampleTree(listing.items, listing.categories) : []),
    [listing]
  );
  const expandedKeys = expanded ?? new Set(roots.map(root => root.key));
  const toggle = (key: string) => {
    const next = new Set(expandedKeys);
    if (next.has(key)) {
      next.delete(key);
    } else {
      next.add(key);
    }
    setExpanded(next);
  };

  const onAction = async (action: ExampleAction, item: IExampleItem) => {
    const name = item.id.split('/').pop() ?? item.id;
    switch (action) {
      case 'open':
        open(item.path);
        return;
      case 'copy':
        return model.copy([item.id], trans.__('Copying %1', name));
      case 'update':
        return model.copy([item.id], trans.__('Updating %1', name));
      case 'restore':
        return model.copy([item.id], trans.__('Restoring %1', name));
      case 'reset':
        if (await confirmReset(item)) {
          return model.reset([item.id], trans.__('Resetting %1', name));
        }
    }
  };

  const items = listing?.items ?? [];
  const newIds = idsWithStatus(items, ['new']);
  const updateIds = idsWithStatus(items, ['update-available']);
  const busy = progress !== null;

  return (
    <div className="jp-tk-panel-body">
      <header className="jp-tk-panel-header">
        <h2>{trans.__('Examples')}</h2>
        <button
          type="button"
          className="jp-tk-icon-button"
          title={trans.__('Refresh')}
          aria-label={trans.__('Refresh')}
          disabled={loading}
          onClick={() => void model.refresh()}
        >
          <refreshIcon.react tag="span" />
        </button>
      </header>

      {listing && (
        <p className="jp-tk-examples-meta" title={listing.destination}>
          {trans.__(
            'For image %1, copies in %2',
            listing.image,
            copiesFolder(listing.items) || listing.destination
          )}
        </p>
      )}

      {error && (
        <p className="jp-tk-banner jp-tk-banner-error" role="alert">
          {trans.__('Could not read the examples: %1', error)}
        </p>
      )}

      {listing?.sync.running &&
        (listing.sync.total ? (
          <ProgressBar
            progress={{
              label: trans.__('Copying new examples in the background'),
              done: listing.sync.copied,
              total: listing.sync.total
            }}
            trans={trans}
          />
        ) : (
          <p className="jp-tk-banner jp-tk-banner-info" role="status">
            {trans.__('Copying new examples in the background…')}
          </p>
        ))}
      {/* A missing source has its own message below; the sync error would repeat it. */}
      {listing?.source_exists && listing.sync.error && (
        <p className="jp-tk-banner jp-tk-banner-error jp-tk-sync-error" role="alert">
          {trans.__('The automatic copy at start-up failed: %1', listing.sync.error)}
        </p>
      )}

      {!listing && !error && (
        <p className="jp-tk-loading">{trans.__('Reading examples…')}</p>
      )}

      {listing && !listing.source_exists && (
        <div className="jp-tk-empty jp-tk-examples-missing" role="status">
          <examplesIcon.react className="jp-tk-empty-icon" tag="span" />
          <h3>{trans.__('No examples in this image')}</h3>
          <p>
            {trans.__(
              'The examples folder %1 does not exist here. Your own copies in %2 are not affected. Ask the administrator of this JupyterHub to add the examples to the image or to configure ExamplesSync.source_dir.',
              listing.source,
              listing.destination
            )}
          </p>
        </div>
      )}

      {listing?.source_exists && listing.error && (
        <p className="jp-tk-banner jp-tk-banner-error" role="alert">
          {listing.error}
        </p>
      )}

      {listing?.source_exists && (
        <>
          <div className="jp-tk-examples-toolbar">
            <button
              type="button"
              // Primary only while there is something to copy: disabled, it looks disabled.
              className={`jp-mod-styled jp-tk-copy-all${
                busy || newIds.length === 0 ? '' : ' jp-mod-accept'
              }`}
              disabled={busy || newIds.length === 0}
              onClick={() =>
                void model.copy(
                  newIds,
                  trans.__('Copying %1 new examples', newIds.length)
                )
              }
            >
              {trans.__('Copy all new (%1)', newIds.length)}
            </button>
            {updateIds.length > 0 && (
              <button
                type="button"
                className="jp-mod-styled jp-tk-update-all"
                disabled={busy}
                onClick={() =>
                  void model.copy(
                    updateIds,
                    trans.__('Updating %1 examples', updateIds.length)
                  )
                }
              >
                {trans.__('Update all (%1)', updateIds.length)}
              </button>
            )}
          </div>
          {progress && <ProgressBar progress={progress} trans={trans} />}
          {failures.length > 0 && (
            <div className="jp-tk-banner jp-tk-banner-warn" role="alert">
              <p>
                {trans._n(
                  '%1 example was not changed:',
                  '%1 examples were not changed:',
                  failures.length
                )}
              </p>
              <ul>
                {failures.slice(0, 10).map(f => (
                  <li key={f.id}>
                    <code>{f.id}</code>: {f.message}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {backups.length > 0 && (
            <div className="jp-tk-banner jp-tk-banner-info jp-tk-backups" role="status">
              {backups.map(path => (
                <p key={path}>
                  {trans.__('Your version was kept as')}{' '}
                  <button
                    type="button"
                    className="jp-tk-link"
                    onClick={() => open(path)}
                  >
                    {path.split('/').pop()}
                  </button>
                </p>
              ))}
            </div>
          )}
          {items.length === 0 ? (
            <p className="jp-tk-empty-reason">
              {trans.__(
                'No examples for this image (categories: %1).',
                listing.categories.join(', ') || '–'
              )}
            </p>
          ) : (
            <ExamplesTree
              roots={roots}
              expanded={expandedKeys}
              onToggle={toggle}
              onAction={(action, item) => void onAction(action, item)}
              busy={busy}
              trans={trans}
            />
          )}
          {(listing.skipped?.length ?? 0) > 0 && (
            <details className="jp-tk-examples-skipped">
              <summary>
                {trans._n(
                  '%1 file left out',
                  '%1 files left out',
                  listing.skipped!.length
                )}
              </summary>
              <ul>
                {listing.skipped!.map(entry => (
                  <li key={entry.id}>
                    <code>{entry.id}</code>: {entry.reason}
                  </li>
                ))}
              </ul>
            </details>
          )}
          <Legend trans={trans} />
        </>
      )}
    </div>
  );
}
