/**
 * Examples as a tree (category > folders > files), the meaning of every status, and
 * which actions each status allows. Pure logic, no DOM.
 */
import type { ExampleStatus, IExampleItem } from '../api';
import type { ITranslate } from '../trans';

/** Every status, in the order the legend lists them. */
export const STATUSES: readonly ExampleStatus[] = [
  'new',
  'unchanged',
  'update-available',
  'modified',
  'conflict',
  'deleted'
];

export interface IStatusInfo {
  /** Short badge text. */
  label: string;
  /** One sentence for the tooltip and the legend. */
  description: string;
}

/** Badge text and explanation of a status, translated. */
export function statusInfo(status: ExampleStatus, trans: ITranslate): IStatusInfo {
  switch (status) {
    case 'new':
      return {
        label: trans.__('New'),
        description: trans.__(
          'Not copied yet: copy it to get your own editable version.'
        )
      };
    case 'unchanged':
      return {
        label: trans.__('Up to date'),
        description: trans.__(
          'Your copy has what the original has. Opening and running it is not editing it.'
        )
      };
    case 'update-available':
      return {
        label: trans.__('Update available'),
        description: trans.__(
          'The original changed and you did not edit your copy: updating is safe. If you ran it, your version with its outputs is kept beside the new one.'
        )
      };
    case 'modified':
      return {
        label: trans.__('Edited'),
        description: trans.__(
          "You edited your copy (a notebook's cells, any other file's content); the original did not change. It is never overwritten."
        )
      };
    case 'conflict':
      return {
        label: trans.__('Edited, update available'),
        description: trans.__(
          'You edited your copy and the original changed too. Reset to get the new original; your version is kept beside it.'
        )
      };
    case 'deleted':
      return {
        label: trans.__('Deleted'),
        description: trans.__(
          'You deleted your copy. It is not copied again unless you restore it.'
        )
      };
  }
}

/** What a user can do with one example. */
export type ExampleAction = 'copy' | 'update' | 'restore' | 'reset' | 'open';

/**
 * Actions a status allows. Copy and update never overwrite an edit (the server refuses
 * to); reset keeps the user's version beside the restored original.
 */
export function actionsFor(status: ExampleStatus): ExampleAction[] {
  switch (status) {
    case 'new':
      return ['copy'];
    case 'unchanged':
      return ['open'];
    case 'update-available':
      return ['update', 'open'];
    case 'modified':
      return ['open', 'reset'];
    case 'conflict':
      return ['open', 'reset'];
    case 'deleted':
      return ['restore'];
  }
}

export interface IFileNode {
  kind: 'file';
  name: string;
  item: IExampleItem;
}

export interface IFolderNode {
  kind: 'folder';
  name: string;
  /** Id prefix of everything below, e.g. `common/llm`; unique, used as React key. */
  key: string;
  children: TreeNode[];
  /** Number of files below, by status. */
  counts: Partial<Record<ExampleStatus, number>>;
  /** Number of files below. */
  total: number;
}

export type TreeNode = IFileNode | IFolderNode;

/**
 * Build one folder node per category from the flat item list. Categories keep the
 * server's order (`categories`), then any category only items mention; inside a folder,
 * subfolders come first, then files, each sorted by name.
 */
export function buildExampleTree(
  items: IExampleItem[],
  categories: string[] = []
): IFolderNode[] {
  const roots = new Map<string, IFolderNode>();
  const folder = (name: string, key: string): IFolderNode => ({
    kind: 'folder',
    name,
    key,
    children: [],
    counts: {},
    total: 0
  });
  for (const category of categories) {
    roots.set(category, folder(category, category));
  }

  for (const item of items) {
    let node: IFolderNode | undefined = roots.get(item.category);
    if (!node) {
      node = folder(item.category, item.category);
      roots.set(item.category, node);
    }
    // The id is `category/relative/path`; the category may itself contain a slash.
    const relative = item.id.startsWith(`${item.category}/`)
      ? item.id.slice(item.category.length + 1)
      : item.id;
    const parts = relative.split('/').filter(Boolean);
    const fileName = parts.pop() ?? item.id;
    const chain: IFolderNode[] = [node];
    for (const part of parts) {
      const key = `${node.key}/${part}`;
      let child: IFolderNode | undefined = node.children.find(
        (c): c is IFolderNode => c.kind === 'folder' && c.key === key
      );
      if (!child) {
        child = folder(part, key);
        node.children.push(child);
      }
      node = child;
      chain.push(node);
    }
    node.children.push({ kind: 'file', name: fileName, item });
    for (const ancestor of chain) {
      ancestor.total += 1;
      ancestor.counts[item.status] = (ancestor.counts[item.status] ?? 0) + 1;
    }
  }

  const sort = (node: IFolderNode) => {
    node.children.sort((a, b) => {
      if (a.kind !== b.kind) {
        return a.kind === 'folder' ? -1 : 1;
      }
      return a.name.localeCompare(b.name, undefined, { numeric: true });
    });
    node.children.forEach(c => c.kind === 'folder' && sort(c));
  };
  const result = [...roots.values()];
  result.forEach(sort);
  return result;
}

/** Ids of the items with one of the given statuses, in list order. */
export function idsWithStatus(
  items: IExampleItem[],
  statuses: readonly ExampleStatus[]
): string[] {
  return items.filter(item => statuses.includes(item.status)).map(item => item.id);
}

/** Split a list into consecutive chunks of at most `size` elements. */
export function batches<T>(list: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`batch size must be a positive integer, got ${size}`);
  }
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) {
    out.push(list.slice(i, i + size));
  }
  return out;
}

/**
 * The folder holding this image's copies, relative to the server root (as the file
 * browser shows it), read from the items' paths; `null` when no item tells.
 */
export function copiesFolder(items: IExampleItem[]): string | null {
  for (const item of items) {
    if (item.path.endsWith(`/${item.id}`)) {
      return item.path.slice(0, -(item.id.length + 1));
    }
    if (item.path === item.id) {
      return '';
    }
  }
  return null;
}
