/**
 * Storage tiers of the server's folders (`GET jupyter-tk/api/storage`): which tier a path is
 * in, and what to tell the user about it. Pure, so it is unit tested without JupyterLab.
 */
import type { ITranslate } from '../trans';

export type StorageTier = 'persistent' | 'shared' | 'read-only' | 'ephemeral';

/** One folder the spawner described; `path` is relative to the server root ("" = root). */
export interface IStorageFolder {
  path: string;
  tier: StorageTier;
}

/** `GET jupyter-tk/api/storage` */
export interface IStorageListing {
  folders: IStorageFolder[];
  /** Why no tiers are shown although the spawner passed some (a malformed variable). */
  error: string | null;
}

function normalize(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}

/** The innermost folder of the layout that holds `path`, or null (no tier known). */
export function folderOf(
  path: string,
  folders: readonly IStorageFolder[]
): IStorageFolder | null {
  const target = normalize(path);
  let best: IStorageFolder | null = null;
  for (const folder of folders) {
    const base = normalize(folder.path);
    const holds = base === '' || target === base || target.startsWith(base + '/');
    if (holds && (best === null || base.length > normalize(best.path).length)) {
      best = folder;
    }
  }
  return best;
}

/** The folder users are told to keep their work in: the outermost persistent one. */
export function keepFolder(folders: readonly IStorageFolder[]): string | null {
  const persistent = folders
    .filter(folder => folder.tier === 'persistent')
    .map(folder => normalize(folder.path))
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  return persistent.length > 0 ? persistent[0] : null;
}

/** Short label and the sentence behind it, for a tier. */
export function tierText(
  tier: StorageTier,
  folders: readonly IStorageFolder[],
  trans: ITranslate
): { label: string; title: string } {
  switch (tier) {
    case 'persistent':
      return {
        label: trans.__('Persistent'),
        title: trans.__('Your own files here are kept when your server stops.')
      };
    case 'shared':
      return {
        label: trans.__('Shared'),
        title: trans.__('Shared with other users and kept when your server stops.')
      };
    case 'read-only':
      return {
        label: trans.__('Read only'),
        title: trans.__('Read only: copy a file to another folder to change it.')
      };
    case 'ephemeral': {
      const keep = keepFolder(folders);
      return {
        label: trans.__('Ephemeral'),
        title:
          keep === null
            ? trans.__('Deleted when your server stops.')
            : trans.__('Deleted when your server stops: keep your work in %1.', keep)
      };
    }
  }
}

/** The warning for a notebook saved where it will be lost; null when it is safe there. */
export function ephemeralWarning(
  path: string,
  folders: readonly IStorageFolder[],
  trans: ITranslate
): string | null {
  if (folderOf(path, folders)?.tier !== 'ephemeral') {
    return null;
  }
  const name = normalize(path).split('/').pop() ?? path;
  const keep = keepFolder(folders);
  return keep === null
    ? trans.__(
        '"%1" is in an ephemeral folder: it will be lost when your server stops.',
        name
      )
    : trans.__(
        '"%1" is in an ephemeral folder: it will be lost when your server stops. Copy it to %2 to keep it.',
        name,
        keep
      );
}
