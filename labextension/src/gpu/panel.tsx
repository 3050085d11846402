/**
 * The "GPUs" sidebar panel: one card per device, MIG instances grouped under their GPU,
 * an empty state that says why no GPU is visible, driver and CUDA versions at the end.
 */
import * as React from 'react';

import type { Session } from '@jupyterlab/services';
import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import { ReactWidget, refreshIcon, UseSignal } from '@jupyterlab/ui-components';
import type { IDisposable } from '@lumino/disposable';
import type { Message } from '@lumino/messaging';

import type { IGpuSnapshot } from '../api';
import { gpuIcon } from '../icons';
import { GpuCard, MigGroup } from './components';
import { GpuModel, HISTORY_WINDOW_SECONDS } from './model';
import { groupDevices } from './summary';

export const GPU_PANEL_ID = 'jp-tk-gpu-panel';

export class GpuPanel extends ReactWidget {
  constructor(options: GpuPanel.IOptions) {
    super();
    this._model = options.model;
    this._sessions = options.sessions ?? null;
    this._trans = (options.translator ?? nullTranslator).load('jupyter_tk');
    this.id = GPU_PANEL_ID;
    this.addClass('jp-tk-panel');
    this.addClass('jp-tk-gpu-panel');
    this.title.icon = gpuIcon;
    this.title.caption = this._trans.__('GPUs');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Poll only while someone looks; the status bar holds its own handle.
    this._pollHandle ??= this._model.acquire();
    void this._model.loadHistory();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._pollHandle?.dispose();
    this._pollHandle = null;
  }

  dispose(): void {
    this._pollHandle?.dispose();
    this._pollHandle = null;
    super.dispose();
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this._model.changed}>
        {() =>
          this._sessions ? (
            <UseSignal signal={this._sessions.runningChanged}>
              {() => this._renderContent()}
            </UseSignal>
          ) : (
            this._renderContent()
          )
        }
      </UseSignal>
    );
  }

  private _renderContent(): JSX.Element {
    const trans = this._trans;
    const { snapshot, error } = this._model;
    return (
      <div className="jp-tk-panel-body">
        <header className="jp-tk-panel-header">
          <h2>{trans.__('GPUs')}</h2>
          <button
            type="button"
            className="jp-tk-icon-button"
            title={trans.__('Refresh now')}
            aria-label={trans.__('Refresh now')}
            onClick={() => void this._model.refresh()}
          >
            <refreshIcon.react tag="span" />
          </button>
        </header>
        {error && (
          <p className="jp-tk-banner jp-tk-banner-error" role="alert">
            {snapshot
              ? trans.__('Update failed, showing older figures: %1', error)
              : trans.__('Could not read GPU status: %1', error)}
          </p>
        )}
        {snapshot ? this._renderSnapshot(snapshot) : !error && this._renderLoading()}
      </div>
    );
  }

  private _renderLoading(): JSX.Element {
    return <p className="jp-tk-loading">{this._trans.__('Reading GPU status…')}</p>;
  }

  private _renderSnapshot(snapshot: IGpuSnapshot): JSX.Element {
    const trans = this._trans;
    if (!snapshot.available || snapshot.devices.length === 0) {
      return (
        <div className="jp-tk-empty" role="status">
          <gpuIcon.react className="jp-tk-empty-icon" tag="span" />
          <h3>{trans.__('No GPU visible to this server')}</h3>
          <p className="jp-tk-empty-reason">
            {snapshot.reason ??
              trans.__('NVML reports no device that this server may use.')}
          </p>
        </div>
      );
    }
    const common = {
      end: snapshot.timestamp,
      window: HISTORY_WINDOW_SECONDS,
      // Polls may be a little late; three missed samples in a row is missing data.
      maxGap: 3 * this._model.sampleSpacing,
      kernelLabel: (kernelId: string) => this._kernelLabel(kernelId),
      trans
    };
    return (
      <>
        <div className="jp-tk-gpu-list">
          {groupDevices(snapshot.devices).map(entry =>
            entry.kind === 'device' ? (
              <GpuCard
                key={entry.device.uuid}
                device={entry.device}
                samples={this._model.histories.get(entry.device.uuid)}
                {...common}
              />
            ) : (
              <MigGroup
                key={entry.parentUuid}
                parentUuid={entry.parentUuid}
                devices={entry.devices}
                samplesOf={uuid => this._model.histories.get(uuid)}
                {...common}
              />
            )
          )}
        </div>
        <footer className="jp-tk-panel-footer">
          {this._versions(snapshot, trans)}
        </footer>
      </>
    );
  }

  private _versions(snapshot: IGpuSnapshot, trans: TranslationBundle): string {
    const parts: string[] = [];
    if (snapshot.driver_version) {
      parts.push(trans.__('Driver %1', snapshot.driver_version));
    }
    if (snapshot.cuda_driver_version) {
      parts.push(trans.__('CUDA %1', snapshot.cuda_driver_version));
    }
    parts.push(
      trans.__('updated %1', new Date(snapshot.timestamp * 1000).toLocaleTimeString())
    );
    return parts.join(' · ');
  }

  /** The notebook (or console) a kernel of this server belongs to, else its short id. */
  private _kernelLabel(kernelId: string): string {
    if (this._sessions) {
      for (const session of this._sessions.running()) {
        if (session.kernel?.id === kernelId) {
          const name = session.path.split('/').pop() || session.name;
          return name || session.kernel.name;
        }
      }
    }
    return this._trans.__('kernel %1', kernelId.slice(0, 8));
  }

  private _model: GpuModel;
  private _pollHandle: IDisposable | null = null;
  private _sessions: Session.IManager | null;
  private _trans: TranslationBundle;
}

export namespace GpuPanel {
  export interface IOptions {
    model: GpuModel;
    /** Resolves kernel ids to notebook names; without it the kernel id is shown. */
    sessions?: Session.IManager | null;
    translator?: ITranslator;
  }
}
