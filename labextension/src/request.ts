import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** URL namespace of the jupyter-tk server extension, below the server's base_url. */
export const API_NAMESPACE = 'jupyter-tk';

/**
 * Call a jupyter-tk REST endpoint and return its parsed JSON body.
 *
 * The URL is built from the server settings' `baseUrl`, so it works behind JupyterHub
 * (`/user/<name>/`) or any other prefix; authentication (token, XSRF cookie) is added by
 * `ServerConnection.makeRequest`.
 *
 * @param endPoint path below `<base_url>/jupyter-tk/`, e.g. `api/gpus`
 * @param init fetch options; a JSON body gets the JSON content type
 * @param settings server connection settings (defaults to the page's)
 * @throws ServerConnection.NetworkError when the server cannot be reached
 * @throws ServerConnection.ResponseError with the server's `message` for an HTTP error
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);
  const headers = new Headers(init.headers);
  if (init.body !== undefined && !headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json');
  }

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, { ...init, headers }, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // An HTML error page (e.g. from a proxy) is kept as text for the message below.
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, errorMessage(data, response));
  }
  return data as T;
}

/** POST a JSON body to a jupyter-tk endpoint. */
export function postAPI<T>(
  endPoint: string,
  body: unknown,
  settings?: ServerConnection.ISettings
): Promise<T> {
  return requestAPI<T>(
    endPoint,
    { method: 'POST', body: JSON.stringify(body) },
    settings
  );
}

/** The message of an error thrown by `requestAPI` (or any other error), for display. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

function errorMessage(data: unknown, response: Response): string {
  if (
    data !== null &&
    typeof data === 'object' &&
    typeof (data as { message?: unknown }).message === 'string' &&
    (data as { message: string }).message
  ) {
    return (data as { message: string }).message;
  }
  return `${response.status} ${response.statusText}`.trim();
}
