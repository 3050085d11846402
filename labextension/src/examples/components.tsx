/**
 * React views of the Examples panel: the tree with a badge and actions per file, the
 * progress bar, the legend. Presentational: state and actions come in props.
 */
import * as React from 'react';

import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';

import type { ExampleStatus, IExampleItem } from '../api';
import type { ITranslate } from '../trans';
import type { IProgress } from './model';
import {
  actionsFor,
  ExampleAction,
  IFolderNode,
  statusInfo,
  STATUSES,
  TreeNode
} from './tree';

export interface IStatusBadgeProps {
  status: ExampleStatus;
  trans: ITranslate;
}

export function StatusBadge(props: IStatusBadgeProps): JSX.Element {
  const info = statusInfo(props.status, props.trans);
  return (
    <span className="jp-tk-badge" data-status={props.status} title={info.description}>
      {info.label}
    </span>
  );
}

export interface IProgressBarProps {
  progress: IProgress;
  trans: ITranslate;
}

export function ProgressBar(props: IProgressBarProps): JSX.Element {
  const { label, done, total } = props.progress;
  const percent = total > 0 ? Math.round((done / total) * 100) : 0;
  return (
    <div className="jp-tk-progress">
      <div className="jp-tk-progress-label">
        <span>{label}</span>
        <span>{props.trans.__('%1 of %2', done, total)}</span>
      </div>
      <div
        className="jp-tk-progress-track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={done}
      >
        <div className="jp-tk-progress-fill" style={{ width: `${percent}%` }} />
      </div>
    </div>
  );
}

export function Legend(props: { trans: ITranslate }): JSX.Element {
  const { trans } = props;
  return (
    <details className="jp-tk-examples-legend">
      <summary>{trans.__('What the badges mean')}</summary>
      <dl>
        {STATUSES.map(status => (
          <div key={status}>
            <dt>
              <StatusBadge status={status} trans={trans} />
            </dt>
            <dd>{statusInfo(status, trans).description}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}

export interface ITreeProps {
  roots: IFolderNode[];
  expanded: ReadonlySet<string>;
  onToggle: (key: string) => void;
  onAction: (action: ExampleAction, item: IExampleItem) => void;
  /** Actions are disabled while a copy or reset runs. */
  busy: boolean;
  trans: ITranslate;
}

/** The examples as an ARIA tree: categories, folders, files. */
export function ExamplesTree(props: ITreeProps): JSX.Element {
  return (
    <ul
      className="jp-tk-examples-tree"
      role="tree"
      aria-label={props.trans.__('Examples')}
    >
      {props.roots.map(root => (
        <FolderRow key={root.key} node={root} depth={0} {...props} />
      ))}
    </ul>
  );
}

interface IRowProps extends ITreeProps {
  depth: number;
}

function actionLabel(action: ExampleAction, trans: ITranslate): string {
  switch (action) {
    case 'copy':
      return trans.__('Copy');
    case 'update':
      return trans.__('Update');
    case 'restore':
      return trans.__('Restore');
    case 'reset':
      return trans.__('Reset to original…');
    case 'open':
      return trans.__('Open');
  }
}

function actionTitle(action: ExampleAction, name: string, trans: ITranslate): string {
  switch (action) {
    case 'copy':
      return trans.__('Copy %1 to your examples folder', name);
    case 'update':
      return trans.__(
        'Replace your unedited copy of %1 with the new original; if you ran it, your version is kept beside it',
        name
      );
    case 'restore':
      return trans.__('Copy %1 again', name);
    case 'reset':
      return trans.__(
        'Replace your copy of %1 with the original; your version is kept beside it',
        name
      );
    case 'open':
      return trans.__('Open your copy of %1', name);
  }
}

function FolderRow(props: IRowProps & { node: IFolderNode }): JSX.Element {
  const { node, depth, expanded, onToggle, trans } = props;
  const isOpen = expanded.has(node.key);
  const Caret = isOpen ? caretDownIcon : caretRightIcon;
  const pending = (node.counts['new'] ?? 0) + (node.counts['update-available'] ?? 0);
  return (
    <li
      className={`jp-tk-examples-folder${depth === 0 ? ' jp-tk-examples-category' : ''}`}
      role="treeitem"
      aria-expanded={isOpen}
      data-key={node.key}
    >
      <button
        type="button"
        className="jp-tk-examples-row jp-tk-examples-folder-row"
        style={{ paddingLeft: `${4 + depth * 14}px` }}
        onClick={() => onToggle(node.key)}
      >
        <Caret.react tag="span" className="jp-tk-caret" />
        <span className="jp-tk-examples-name">{node.name}</span>
        <span className="jp-tk-examples-count">
          {trans._n('%1 file', '%1 files', node.total)}
          {pending > 0 && ` · ${trans.__('%1 to copy', pending)}`}
        </span>
      </button>
      {isOpen && (
        <ul role="group">
          {node.children.length === 0 && (
            <li className="jp-tk-examples-none" role="none">
              {trans.__('No examples in this folder')}
            </li>
          )}
          {node.children.map((child: TreeNode) =>
            child.kind === 'folder' ? (
              <FolderRow key={child.key} {...props} node={child} depth={depth + 1} />
            ) : (
              <FileRow
                key={child.item.id}
                {...props}
                item={child.item}
                name={child.name}
                depth={depth + 1}
              />
            )
          )}
        </ul>
      )}
    </li>
  );
}

function FileRow(props: IRowProps & { item: IExampleItem; name: string }): JSX.Element {
  const { item, name, depth, onAction, busy, trans } = props;
  const actions = actionsFor(item.status);
  const canOpen = actions.includes('open');
  return (
    <li
      className="jp-tk-examples-file"
      role="treeitem"
      data-id={item.id}
      data-status={item.status}
    >
      <div
        className="jp-tk-examples-row"
        style={{ paddingLeft: `${18 + depth * 14}px` }}
      >
        {canOpen ? (
          <button
            type="button"
            className="jp-tk-examples-name jp-tk-link"
            title={item.path}
            onClick={() => onAction('open', item)}
          >
            {name}
          </button>
        ) : (
          <span className="jp-tk-examples-name" title={item.id}>
            {name}
          </span>
        )}
        <span className="jp-tk-examples-file-side">
          {item.error && (
            <span
              className="jp-tk-examples-item-error"
              role="img"
              title={item.error}
              aria-label={item.error}
            >
              !
            </span>
          )}
          <StatusBadge status={item.status} trans={trans} />
        </span>
        <span className="jp-tk-examples-actions">
          {actions
            .filter(action => action !== 'open')
            .map(action => (
              <button
                key={action}
                type="button"
                className="jp-tk-action"
                data-action={action}
                disabled={busy}
                title={actionTitle(action, name, trans)}
                onClick={() => onAction(action, item)}
              >
                {actionLabel(action, trans)}
              </button>
            ))}
          {canOpen && (
            <button
              type="button"
              className="jp-tk-action"
              data-action="open"
              title={actionTitle('open', name, trans)}
              onClick={() => onAction('open', item)}
            >
              {actionLabel('open', trans)}
            </button>
          )}
        </span>
      </div>
    </li>
  );
}
