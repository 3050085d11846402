/**
 * Plugin `jupyter-tk:idle`: warns before the hub stops this server because its GPU did no work
 * (the GPU idle rule of `jupyter_tk.hub.culling`). Polls `jupyter-tk/api/activity` as often as
 * the server asks; shows one warning notification and keeps its countdown current.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { requestAPI } from '../request';
import { IActivity, pollSeconds, warningText } from './notice';

export const idlePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-tk:idle',
  description:
    'Warns some minutes before the hub stops a server whose GPU does no work.',
  autoStart: true,
  optional: [ITranslator],
  activate: (_app: JupyterFrontEnd, translator: ITranslator | null): void => {
    const trans = (translator ?? nullTranslator).load('jupyter_tk');
    let notificationId: string | null = null;

    const show = (text: string | null): void => {
      if (text === null) {
        if (notificationId !== null) {
          Notification.dismiss(notificationId);
          notificationId = null;
        }
        return;
      }
      const shown =
        notificationId !== null &&
        Notification.manager.notifications.some(n => n.id === notificationId);
      if (shown) {
        Notification.update({ id: notificationId!, message: text, type: 'warning' });
      } else if (notificationId === null) {
        // Once dismissed by the user it stays dismissed until the warning ends.
        notificationId = Notification.warning(text, { autoClose: false });
      }
    };

    const poll = async (): Promise<void> => {
      let activity: IActivity | null = null;
      try {
        activity = await requestAPI<IActivity>('api/activity');
        show(warningText(activity, new Date(), trans));
      } catch {
        // Not behind a hub, or the server is going away: nothing to say.
      }
      if (activity && !activity.reporting) {
        return; // not behind a hub: no rule to warn about
      }
      window.setTimeout(() => void poll(), pollSeconds(activity) * 1000);
    };
    void poll();
  }
};
