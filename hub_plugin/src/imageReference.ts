/**
 * Container image references with the docker/distribution grammar: the same checks, in the same
 * order and with the same messages, as `jupyter_tk/hub/image_reference.py` (the shared cases in
 * `tests/vectors/form_rules.json` check both), so the form refuses a bad custom image before
 * submit exactly as the server would.
 */
import { pyRepr } from './text.ts';

export const DOCKER_HUB = 'docker.io';
const NAME_TOTAL_LENGTH_MAX = 255;
const REFERENCE_LENGTH_MAX = 1024;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const REGISTRY = new RegExp(`^(${HOST})(?::([0-9]+))?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const PORT_MAX = 65535;
const SHOWN_LENGTH_MAX = 80;

export interface ImageReference {
  registry: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

export class ReferenceError extends Error {}

function show(text: string): string {
  const chars = Array.from(text);
  return pyRepr(
    chars.length <= SHOWN_LENGTH_MAX ? text : chars.slice(0, SHOWN_LENGTH_MAX).join('') + '…'
  );
}

function checkText(text: string, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(text)) {
    throw new ReferenceError(`${what} ${show(text)} contains non-ASCII characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f]/.test(text)) {
    throw new ReferenceError(`${what} ${show(text)} contains whitespace or control characters`);
  }
}

function checkRegistry(registry: string): void {
  const match = REGISTRY.exec(registry);
  if (!match) {
    throw new ReferenceError(
      `invalid registry ${show(registry)}: expected a host name (letters, digits, ` +
        "'-' and '.'), or an [IPv6] address, with an optional :port"
    );
  }
  const port = match[2];
  if (port !== undefined && !(Number(port) > 0 && Number(port) <= PORT_MAX)) {
    throw new ReferenceError(`invalid registry ${show(registry)}: port ${port} is out of range`);
  }
}

function splitRegistry(name: string): [string | null, string] {
  const slash = name.indexOf('/');
  if (slash < 0) {
    return [null, name];
  }
  const first = name.slice(0, slash);
  const looksLikeRegistry = first.includes('.') || first.includes(':') || first === 'localhost';
  if (looksLikeRegistry || first !== first.toLowerCase()) {
    return [first, name.slice(slash + 1)];
  }
  return [null, name];
}

function checkRepository(repository: string): void {
  if (repository.startsWith('/') || repository.endsWith('/') || repository.includes('//')) {
    throw new ReferenceError(`invalid repository ${show(repository)}: empty path component`);
  }
  if (repository !== repository.toLowerCase()) {
    throw new ReferenceError(
      `invalid repository ${show(repository)}: the repository must be lowercase`
    );
  }
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new ReferenceError(
        `invalid repository ${show(repository)}: path component ${show(component)} ` +
          "must be lowercase letters and digits separated by '.', '_', '__' or dashes"
      );
    }
  }
}

function checkDigest(digest: string): void {
  const match = DIGEST.exec(digest);
  if (!match) {
    throw new ReferenceError(
      `invalid digest ${show(digest)}: expected 'algorithm:hex' with at least 32 hex ` +
        'digits, e.g. sha256:<64 hex digits>'
    );
  }
  const [, algorithm, hex] = match;
  const expected = DIGEST_HEX_LENGTH[algorithm];
  if (expected !== undefined && (hex.length !== expected || hex !== hex.toLowerCase())) {
    throw new ReferenceError(
      `invalid digest ${show(digest)}: ${algorithm} needs exactly ${expected} lowercase hex digits`
    );
  }
}

/** A registry as compared in allowlists (`Docker.IO` -> `docker.io`); throws ReferenceError. */
export function normalizeRegistry(registry: string): string {
  checkText(registry, 'registry');
  checkRegistry(registry);
  const lowered = registry.toLowerCase();
  return lowered === 'index.docker.io' ? DOCKER_HUB : lowered;
}

/** Parse `reference`; throws ReferenceError saying what is wrong. */
export function parseImageReference(reference: string): ImageReference {
  if (!reference) {
    throw new ReferenceError('image reference is empty');
  }
  checkText(reference, 'image reference');
  if (reference.length > REFERENCE_LENGTH_MAX) {
    throw new ReferenceError(`image reference is longer than ${REFERENCE_LENGTH_MAX} characters`);
  }
  const at = reference.indexOf('@');
  const remainder = at < 0 ? reference : reference.slice(0, at);
  let digest: string | null = null;
  if (at >= 0) {
    digest = reference.slice(at + 1);
    checkDigest(digest);
  }
  let name = remainder;
  let tag: string | null = null;
  const colon = remainder.lastIndexOf(':');
  if (colon > remainder.lastIndexOf('/')) {
    name = remainder.slice(0, colon);
    tag = remainder.slice(colon + 1);
    if (!TAG.test(tag)) {
      throw new ReferenceError(
        `invalid tag ${show(tag)}: a tag is 1 to 128 letters, digits, '_', '.' or '-' ` +
          "and does not start with '.' or '-'"
      );
    }
  }
  if (!name) {
    throw new ReferenceError('image reference has no repository name');
  }
  if (IMAGE_ID.test(name)) {
    throw new ReferenceError(
      `invalid repository name ${show(name)}: a 64-character hexadecimal string is an image ID`
    );
  }
  let [registry, repository] = splitRegistry(name);
  if (registry !== null) {
    checkRegistry(registry);
    if (registry.toLowerCase() === 'index.docker.io') {
      registry = DOCKER_HUB;
    }
  } else {
    registry = DOCKER_HUB;
  }
  checkRepository(repository);
  if (registry === DOCKER_HUB && !repository.includes('/')) {
    repository = `library/${repository}`;
  }
  const fullName = `${registry}/${repository}`;
  if (fullName.length > NAME_TOTAL_LENGTH_MAX) {
    throw new ReferenceError(
      `image name ${show(fullName)} is longer than ${NAME_TOTAL_LENGTH_MAX} characters`
    );
  }
  return { registry, repository, tag, digest };
}
